export async function deleteAfterSync({ checks }) { checks.fail('not written yet'); }
