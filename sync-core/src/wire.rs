//! Encoding helpers for the JSON wire format.

/// Base64 (standard alphabet, padded) for byte fields.
pub mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }

    pub fn encoded_len(n: usize) -> usize {
        n.div_ceil(3) * 4
    }
}

/// Change hashes as lowercase hex strings.
pub mod hashes {
    use automerge::ChangeHash;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(hashes: &[ChangeHash], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = hashes.iter().map(|h| h.to_string()).collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ChangeHash>, D::Error> {
        let text = Vec::<String>::deserialize(d)?;
        text.iter()
            .map(|h| {
                h.parse::<ChangeHash>()
                    .map_err(|_| serde::de::Error::custom(format!("invalid change hash {h:?}")))
            })
            .collect()
    }
}

/// One change hash as a lowercase hex string.
pub mod hash {
    use automerge::ChangeHash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &ChangeHash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hash.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ChangeHash, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("invalid change hash {text:?}")))
    }
}
