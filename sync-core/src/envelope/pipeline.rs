//! A small bounded pipeline: one source on the calling thread and a chain
//! of stages, each on its own thread, passing a fixed set of blocks along
//! bounded channels and back to the source for reuse. A pass over a file
//! then takes about as long as its slowest stage (reading, hashing,
//! encrypting, writing) rather than their sum, and memory is the blocks,
//! whatever the file's size.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Chunks per block: 1 MiB of plaintext, big enough that a read, a hash
/// update or a write costs far more than passing the block on.
pub(super) const CHUNKS_PER_BLOCK: usize = 16;
/// Blocks in flight: enough for every stage to hold one and one to wait.
pub(super) const BLOCKS: usize = 6;

/// One stage: does its part to a block, which then moves on.
pub(super) type Stage<'a, B, E> = Box<dyn FnMut(&mut B) -> Result<(), E> + Send + 'a>;

/// Runs `source` on this thread and `stages` in order on their own
/// threads over `blocks`. `source` fills a free block and says whether it
/// is to be sent on (`false` ends the run). A stage that fails stops the
/// stages before it (their sends fail) and the ones after it (their
/// channels close); the first error in pipeline order is returned, so an
/// error is never hidden by one it caused.
pub(super) fn run<'a, B: Send, E: Send>(
    blocks: Vec<B>,
    mut source: impl FnMut(&mut B) -> Result<bool, E>,
    stages: Vec<Stage<'a, B, E>>,
) -> Result<(), E> {
    assert!(!blocks.is_empty() && !stages.is_empty());
    let depth = blocks.len();
    let (free_tx, free_rx) = sync_channel::<B>(depth);
    for block in blocks {
        free_tx
            .send(block)
            .expect("the free list has room for every block");
    }
    std::thread::scope(|scope| {
        let (first_tx, first_rx) = sync_channel::<B>(depth);
        let mut free_tx = Some(free_tx);
        let mut upstream = Some(first_rx);
        let count = stages.len();
        let mut handles = Vec::with_capacity(count);
        for (i, mut stage) in stages.into_iter().enumerate() {
            let input: Receiver<B> = upstream.take().expect("each stage has an input");
            let next: SyncSender<B> = if i + 1 == count {
                free_tx.take().expect("one last stage")
            } else {
                let (tx, rx) = sync_channel::<B>(depth);
                upstream = Some(rx);
                tx
            };
            handles.push(scope.spawn(move || {
                for mut block in input {
                    stage(&mut block)?;
                    if next.send(block).is_err() {
                        // A later stage failed; it reports why.
                        break;
                    }
                }
                Ok(())
            }));
        }
        let fed = (|| {
            // Every block in flight and the last stage gone: it failed.
            while let Ok(mut block) = free_rx.recv() {
                if !source(&mut block)? || first_tx.send(block).is_err() {
                    break;
                }
            }
            Ok(())
        })();
        drop(first_tx);
        let mut outcome = fed;
        for handle in handles {
            let stage = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if outcome.is_ok() {
                outcome = stage;
            }
        }
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_pass_every_stage_in_order_and_errors_come_back() {
        let mut seen = Vec::new();
        let mut next = 0u32;
        let mut doubled = Vec::new();
        run::<u32, String>(
            vec![0; 3],
            |b| {
                next += 1;
                *b = next;
                Ok(next <= 100)
            },
            vec![
                Box::new(|b: &mut u32| {
                    *b *= 2;
                    Ok(())
                }),
                Box::new(|b: &mut u32| {
                    doubled.push(*b);
                    Ok(())
                }),
            ],
        )
        .unwrap();
        seen.extend(doubled.iter().map(|d| d / 2));
        assert_eq!(seen, (1..=100).collect::<Vec<_>>());

        let mut count = 0;
        let err = run::<u32, String>(
            vec![0; 2],
            |_| {
                count += 1;
                Ok(true)
            },
            vec![
                Box::new(|_| Ok(())),
                Box::new(|b: &mut u32| {
                    *b += 1;
                    Err("stage two failed".into())
                }),
            ],
        )
        .unwrap_err();
        assert_eq!(err, "stage two failed");
        assert!(count < 10, "the source stopped soon after the failure");
    }
}
