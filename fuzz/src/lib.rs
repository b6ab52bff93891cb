//! What the fuzz targets share: cutting the fuzzer's input into a byte stream and the points it is split at, so that
//! every target that parses a stream can check that the way the stream arrived (the reads of a socket) changes
//! nothing.

/// At most this many cuts: a few cuts reach every state a split can reach, and more only slow each run.
const MAX_CUTS: usize = 6;

/// A fuzzer input read as a stream and cut points.
///
/// Layout: the first byte's low three bits are the number of cuts `n` (up to [`MAX_CUTS`]), the next `2n` bytes are
/// the cut positions (little-endian `u16`, taken modulo the stream's length plus one), and the rest is the stream.
/// An input too short for its cuts has none.
pub struct Split<'a> {
    pub stream: &'a [u8],
    cuts: Vec<usize>,
}

impl<'a> Split<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        let Some((&first, rest)) = input.split_first() else { return Split { stream: input, cuts: Vec::new() } };
        let n = usize::from(first & 7).min(MAX_CUTS);
        if rest.len() < 2 * n {
            return Split { stream: rest, cuts: Vec::new() };
        }
        let (positions, stream) = rest.split_at(2 * n);
        let mut cuts: Vec<usize> = positions
            .chunks_exact(2)
            .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (stream.len() + 1))
            .collect();
        cuts.sort_unstable();
        Split { stream, cuts }
    }

    /// The stream cut at the chosen points, in order (empty pieces included: a read may return nothing new).
    pub fn pieces(&self) -> Vec<&'a [u8]> {
        let mut pieces = Vec::with_capacity(self.cuts.len() + 1);
        let mut from = 0;
        for &cut in &self.cuts {
            pieces.push(&self.stream[from..cut]);
            from = cut;
        }
        pieces.push(&self.stream[from..]);
        pieces
    }

    /// The stream one byte per piece: the smallest reads there are. Only for short streams, as it costs a parse per
    /// byte.
    pub fn bytewise(&self) -> Option<Vec<&'a [u8]>> {
        (self.stream.len() <= 512).then(|| self.stream.chunks(1).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::Split;

    #[test]
    fn cuts_cover_the_whole_stream_in_order() {
        let split = Split::new(&[2, 1, 0, 6, 0, b'a', b'b', b'c', b'd']);
        assert_eq!(split.stream, b"abcd");
        assert_eq!(split.pieces(), vec![&b"a"[..], b"", b"bcd"]);
    }

    #[test]
    fn an_input_too_short_for_its_cuts_has_none() {
        let split = Split::new(&[3, 1, 2]);
        assert_eq!(split.pieces(), vec![&[1u8, 2][..]]);
    }
}
