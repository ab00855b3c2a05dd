export async function languages({ checks }) { checks.fail('not written yet'); }
