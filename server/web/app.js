// placeholder: the review app lands from the webfe branch
