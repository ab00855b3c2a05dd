export async function atRest({ checks }) { checks.fail('not written yet'); }
