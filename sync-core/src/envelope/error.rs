//! Why sealing or opening an attachment failed.

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("reading or writing the file failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("this is not a fieldsync attachment (bad magic)")]
    NotAnAttachment,
    /// Carries the epoch so that a front end can say how to add that key.
    #[error("the attachment is sealed with case key epoch {0}, which this device does not hold")]
    UnknownEpoch(u32),
    #[error("the attachment header does not open with this case key: wrong key, or the header was altered")]
    Header,
    #[error("the attachment is sealed to case key epoch {epoch} of version {needs}, but this device holds a version {holds} key for that epoch; the key store or the attachment is damaged")]
    WrongKind { epoch: u32, needs: u8, holds: u8 },
    #[error("chunk {0} does not authenticate: the attachment was altered, reordered or truncated; nothing of it can be trusted")]
    Chunk(u64),
    #[error("the attachment ends without its final chunk: it was truncated")]
    Truncated,
    #[error("the attachment's final chunk does not authenticate: it was truncated or altered; nothing of it can be trusted")]
    Final,
    #[error("the decrypted file does not match the size or SHA-256 its header records")]
    Digest,
    #[error("the system random number generator failed")]
    Random,
    #[error("the file changed while it was being encrypted; attach it again once it is complete")]
    Changed,
    #[error("the attachment's bytes do not match its blob id: they were altered where they were kept or on the way")]
    NotItsId,
}
