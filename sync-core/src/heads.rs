//! The text form of a set of change heads, as both stores keep it:
//! lowercase hex hashes separated by single spaces.

use automerge::ChangeHash;

pub fn format(heads: &[ChangeHash]) -> String {
    heads
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses what [`format`] wrote; on error, returns the offending word.
pub fn parse(text: &str) -> Result<Vec<ChangeHash>, String> {
    text.split_whitespace()
        .map(|h| h.parse().map_err(|_| h.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn heads_survive_their_text_form_and_junk_is_named() {
        let heads: Vec<automerge::ChangeHash> = vec![
            automerge::ChangeHash([1u8; 32]),
            automerge::ChangeHash([2u8; 32]),
        ];
        assert_eq!(super::parse(&super::format(&heads)), Ok(heads));
        assert_eq!(super::parse(""), Ok(vec![]));
        assert_eq!(super::parse("zz"), Err("zz".to_owned()));
    }
}
