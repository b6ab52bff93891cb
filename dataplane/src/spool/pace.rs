//! Tee mode's pacing: while an upstream attempt keeps up with the client, the client may run only a little ahead.
//!
//! Without it the client's body is read as fast as the client sends and the upstream's attempt, slower, falls ever
//! further behind, so every byte goes to disk and is read back from it: one more copy of the whole body, and CPU the
//! upstream needs. With it the attempt takes each chunk from memory, just after the client sent it, exactly as an
//! unbuffered proxy would; the spool still gets every byte for a replay.
//!
//! Only a reader that has caught up with the writer paces it. A reader replaying from the start after a failed
//! attempt does not hold the client back while it catches up (the client goes on at its own speed into the spool);
//! once it is within [`LEAD`] it becomes a pacer. When the attempt ends (it failed, or the upstream answered early),
//! its reader goes and the client is free again: a stalled upstream holds the client back no longer than the
//! attempt's send timeout.

/// How far the writer may be ahead of the fastest pacing reader before it waits.
pub(super) const LEAD: u64 = 512 * 1024;

/// The readers of one spool and how far each has read.
#[derive(Debug, Default)]
pub(super) struct Readers {
    next_id: u64,
    live: Vec<Position>,
}

#[derive(Debug)]
struct Position {
    id: u64,
    offset: u64,
    pacing: bool,
}

impl Readers {
    /// A new reader at offset 0; returns its id.
    pub(super) fn add(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.live.push(Position { id, offset: 0, pacing: false });
        id
    }

    pub(super) fn remove(&mut self, id: u64) {
        self.live.retain(|reader| reader.id != id);
    }

    /// Reader `id` has read up to `offset` while the writer is at `written`. Returns whether it paces the writer.
    pub(super) fn advanced(&mut self, id: u64, offset: u64, written: u64) -> bool {
        let Some(reader) = self.live.iter_mut().find(|reader| reader.id == id) else { return false };
        reader.offset = offset;
        reader.pacing |= written.saturating_sub(offset) <= LEAD;
        reader.pacing
    }

    /// Whether the writer, at `written`, may take more bytes from the client.
    pub(super) fn writer_may_go_on(&self, written: u64) -> bool {
        match self.pacers().map(|reader| reader.offset).max() {
            None => true,
            Some(fastest) => written.saturating_sub(fastest) <= LEAD,
        }
    }

    /// The offset below which no pacing reader needs bytes any more.
    pub(super) fn slowest_pacer(&self) -> Option<u64> {
        self.pacers().map(|reader| reader.offset).min()
    }

    fn pacers(&self) -> impl Iterator<Item = &Position> {
        self.live.iter().filter(|reader| reader.pacing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_readers_the_writer_never_waits() {
        assert!(Readers::default().writer_may_go_on(u64::MAX));
    }

    #[test]
    fn a_reader_far_behind_does_not_pace_until_it_has_caught_up() {
        let mut readers = Readers::default();
        let replay = readers.add();
        assert!(!readers.advanced(replay, 1 << 20, 100 << 20), "a replay catching up from the file");
        assert!(readers.writer_may_go_on(100 << 20));
        assert!(readers.advanced(replay, (100 << 20) - LEAD, 100 << 20), "caught up");
        assert!(readers.writer_may_go_on(100 << 20));
        assert!(!readers.writer_may_go_on((100 << 20) + 1), "now the writer waits for it");
        assert_eq!(readers.slowest_pacer(), Some((100 << 20) - LEAD));
    }

    #[test]
    fn the_fastest_pacer_sets_the_pace_and_a_removed_reader_releases_the_writer() {
        let mut readers = Readers::default();
        let (old, new) = (readers.add(), readers.add());
        readers.advanced(old, 10 << 20, 10 << 20);
        readers.advanced(new, (10 << 20) - LEAD / 2, 10 << 20);
        assert!(readers.writer_may_go_on((10 << 20) + LEAD));
        assert_eq!(readers.slowest_pacer(), Some((10 << 20) - LEAD / 2));
        readers.remove(old);
        assert!(!readers.writer_may_go_on((10 << 20) + LEAD));
        readers.remove(new);
        assert!(readers.writer_may_go_on(u64::MAX));
        assert_eq!(readers.slowest_pacer(), None);
    }
}
