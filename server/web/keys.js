// The secrets a login link carries in its fragment: the case key share
// codes (k: comma separated, v1 symmetric keys of old epochs and v2 case
// private keys of newer ones, in any order) and the web session's Ed25519
// seed (s). They live in this tab's sessionStorage only (gone when the tab
// closes), never in a cookie, never in a request. The session public key
// comes from the token (bytes 36..68).

import { CryptoError, fromBase64, importSessionKey, parseLoginToken, parseShareCodes, toBase64Url } from "./crypto.js";

const K = "fieldsync.case-keys";
const S = "fieldsync.session-seed";
const P = "fieldsync.session-public";

let caseKeys = null;
let signing = null;

/** Checks and stores the fragment's secrets; throws a CryptoError a person can act on. */
export function storeFromLink({ t, k, s }) {
  parseShareCodes(k); // refuse a cut or altered code now, not when an attachment fails
  const token = parseLoginToken(t);
  if (fromBase64(s).length !== 32) throw new CryptoError("the session key in the link is not 32 bytes");
  sessionStorage.setItem(K, k);
  sessionStorage.setItem(S, s);
  sessionStorage.setItem(P, toBase64Url(token.sessionPublicKey));
  caseKeys = null;
  signing = null;
}

export function clearKeys() {
  for (const name of [K, S, P]) sessionStorage.removeItem(name);
  caseKeys = null;
  signing = null;
}

/** CaseKeys (v1 and v2 keys by epoch, crypto.js), or null when this tab has none. */
export function getCaseKeys() {
  if (caseKeys) return caseKeys;
  const codes = sessionStorage.getItem(K);
  if (!codes) return null;
  const parsed = parseShareCodes(codes);
  caseKeys = parsed.size ? parsed : null;
  return caseKeys;
}

/** { privateKey: CryptoKey, publicKey: Uint8Array } for signing changes, or null. */
export async function getSigningKey() {
  if (signing) return signing;
  const seed = sessionStorage.getItem(S);
  const pub = sessionStorage.getItem(P);
  if (!seed || !pub) return null;
  const publicKey = fromBase64(pub);
  signing = { privateKey: await importSessionKey(fromBase64(seed), publicKey), publicKey };
  return signing;
}

export const MISSING_KEYS =
  "this tab holds no case key: the login link carried none (add the case key on the coordinator device with `fieldsync key add`), or the link was opened in another tab (keys live only in that tab); run `fieldsync web-login` again and open the link here";
