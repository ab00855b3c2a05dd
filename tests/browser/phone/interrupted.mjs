export async function interrupted({ checks }) { checks.fail('not written yet'); }
