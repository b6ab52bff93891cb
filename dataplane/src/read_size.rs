//! The size of the next read from a socket, adapted to what the socket delivers: doubled while reads fill it,
//! halved when they come back under a quarter of it, within bounds. Used for the reads past hyper of a large body
//! ([`crate::client::DirectBody`]) and for the reads of Holdfast's own upstream connections (`upstream::http1`), where
//! it decides how much buffer a read reserves.

/// The next read's size and its bounds.
#[derive(Debug, Clone, Copy)]
pub struct ReadSize {
    next: usize,
    first: usize,
    max: usize,
}

impl ReadSize {
    /// Starts at `first`, never goes below it nor above `max`.
    pub const fn new(first: usize, max: usize) -> Self {
        ReadSize { next: first, first, max }
    }

    /// The size to ask for next.
    pub fn get(&self) -> usize {
        self.next
    }

    /// A read of `asked` bytes returned `n`.
    pub fn record(&mut self, n: usize, asked: usize) {
        if asked != self.next {
            // Capped by something else (the end of the body, the room left in a buffer): says nothing about what
            // the socket delivers.
            return;
        }
        if n == asked {
            self.next = (self.next * 2).min(self.max);
        } else if n < self.next / 4 {
            self.next = (self.next / 2).max(self.first);
        }
    }
}
