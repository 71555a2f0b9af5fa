//! `application/x-www-form-urlencoded` decoding, as the WHATWG URL standard (and so every web
//! framework Twilio's SDKs run under) defines it: split on `&`, skip empty pieces, split each at
//! its first `=`, `+` is a space, `%XX` is a byte, a `%` not followed by two hex digits stays as
//! it is. Unlike lossy decoders this one refuses names and values that are not UTF-8 once
//! decoded: Twilio never sends such bodies, and accepting them would let different bodies map to
//! the same signed parameters.

use std::borrow::Cow;
use std::ops::Range;

use crate::SignatureError;
use crate::params::Params;

/// The raw `name`, `value` byte pieces of a form body or query string, in order.
pub(crate) fn pairs(input: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    input
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.iter().position(|&b| b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &[][..]),
        })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends the decoded form of `input` to `out`, copying runs without `+` or `%` in one go.
fn decode_into(mut input: &[u8], out: &mut Vec<u8>) {
    while let Some(at) = input.iter().position(|&b| b == b'+' || b == b'%') {
        out.extend_from_slice(&input[..at]);
        if input[at] == b'+' {
            out.push(b' ');
            input = &input[at + 1..];
            continue;
        }
        match (
            input.get(at + 1).copied().and_then(hex_value),
            input.get(at + 2).copied().and_then(hex_value),
        ) {
            (Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                input = &input[at + 3..];
            }
            _ => {
                out.push(b'%');
                input = &input[at + 1..];
            }
        }
    }
    out.extend_from_slice(input);
}

/// Index of the first of `&`, `=`, `+`, `%` in an eight-byte chunk, if any (SWAR: a byte equal
/// to `c` becomes zero after XOR with `c` repeated, and the zero-byte test below is exact for
/// the lowest such byte).
fn special_bytes(chunk: &[u8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let word = u64::from_le_bytes(chunk.first_chunk::<8>().copied().unwrap_or([b'&'; 8]));
    let zero_bytes = |c: u8| {
        let x = word ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let found = zero_bytes(b'&') | zero_bytes(b'=') | zero_bytes(b'+') | zero_bytes(b'%');
    (found != 0).then(|| found.trailing_zeros() / 8)
}

/// The decoded form of one name or value; borrowed when there is nothing to decode.
pub(crate) fn decode(input: &[u8]) -> Cow<'_, [u8]> {
    if input.iter().any(|&b| b == b'+' || b == b'%') {
        let mut out = Vec::with_capacity(input.len());
        decode_into(input, &mut out);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(input)
    }
}

/// A decoded `application/x-www-form-urlencoded` body: its `(name, value)` pairs in body order,
/// repeats and empty values kept, exactly as the signature covers them.
///
/// Decoding follows the WHATWG URL standard (`+` is a space, `%XX` a byte, a `%` without two hex
/// digits stays, empty pieces are skipped) and refuses names and values that are not UTF-8 once
/// decoded. All names and values live in one buffer, so decoding costs two allocations whatever
/// the number of parameters.
///
/// Get one from [`Validator::validated_form_body`](crate::Validator::validated_form_body) to
/// check a request and read its parameters with one decoding, or from [`FormBody::parse`].
///
/// ```
/// use twilio_signature::FormBody;
///
/// let form = FormBody::parse(b"Body=Hi+there%21&NumMedia=0&Body=")?;
/// assert_eq!(form.len(), 3);
/// assert_eq!(form.iter().collect::<Vec<_>>(), [("Body", "Hi there!"), ("NumMedia", "0"), ("Body", "")]);
/// assert_eq!(form.get(1), Some(("NumMedia", "0")));
/// # Ok::<(), twilio_signature::SignatureError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormBody {
    buf: String,
    pairs: Vec<(Range<usize>, Range<usize>)>,
}

impl FormBody {
    /// Decodes `body`.
    ///
    /// # Errors
    ///
    /// [`SignatureError::InvalidBody`] when a decoded name or value is not UTF-8.
    pub fn parse(body: &[u8]) -> Result<Self, SignatureError> {
        const NOT_UTF8: SignatureError = SignatureError::InvalidBody {
            reason: "a form name or value is not UTF-8 after percent-decoding",
        };
        // One pass: decoded output is never longer than its input, so `buf` is sized up front
        // and written by index; `&` ends a piece, the first `=` in it ends the name. Runs of
        // ordinary bytes are found eight at a time and copied in one go.
        let mut buf = vec![0u8; body.len()];
        let mut ranges = Vec::with_capacity(body.len() / 16 + 1);
        let mut written = 0;
        let mut name_start = 0;
        let mut value_start = None;
        let mut piece_empty = true;
        let mut i = 0;
        loop {
            if let (Some(chunk), Some(dst)) =
                (body.get(i..i + 8), buf.get_mut(written..written + 8))
            {
                let plain = special_bytes(chunk).map_or(8, |at| at as usize);
                if plain > 0 {
                    // All eight bytes in one move; the ones past `plain` are overwritten later.
                    dst.copy_from_slice(chunk);
                    (i, written, piece_empty) = (i + plain, written + plain, false);
                    continue;
                }
            }
            let Some(&b) = body.get(i) else { break };
            i += 1;
            let decoded = match b {
                b'&' => {
                    if !piece_empty {
                        let split = value_start.unwrap_or(written);
                        ranges.push((name_start..split, split..written));
                    }
                    (name_start, value_start, piece_empty) = (written, None, true);
                    continue;
                }
                b'=' if value_start.is_none() => {
                    (value_start, piece_empty) = (Some(written), false);
                    continue;
                }
                b'+' => b' ',
                b'%' => match (
                    body.get(i).copied().and_then(hex_value),
                    body.get(i + 1).copied().and_then(hex_value),
                ) {
                    (Some(hi), Some(lo)) => {
                        i += 2;
                        hi << 4 | lo
                    }
                    _ => b'%',
                },
                other => other,
            };
            piece_empty = false;
            if let Some(slot) = buf.get_mut(written) {
                *slot = decoded;
            }
            written += 1;
        }
        if !piece_empty {
            let split = value_start.unwrap_or(written);
            ranges.push((name_start..split, split..written));
        }
        buf.truncate(written);
        // One validation of the whole buffer; every piece is then UTF-8 exactly when every piece
        // boundary is a character boundary (a sequence split across two pieces is not).
        let buf = String::from_utf8(buf).map_err(|_| NOT_UTF8)?;
        if !ranges
            .iter()
            .all(|(name, _)| buf.is_char_boundary(name.start) && buf.is_char_boundary(name.end))
        {
            return Err(NOT_UTF8);
        }
        Ok(Self { buf, pairs: ranges })
    }

    /// The number of pairs (a repeated name counts once per occurrence).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when the body had no pairs (it was empty or only `&`s).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The `index`-th `(name, value)` pair in body order.
    pub fn get(&self, index: usize) -> Option<(&str, &str)> {
        self.pairs.get(index).map(|pair| self.pair(pair))
    }

    /// The value of the first pair named `name` (`Body`, `From`, …), `None` when there is none.
    /// A repeated name (`MediaUrl0` twice) has its other values in [`iter`](Self::iter).
    ///
    /// ```
    /// let form = twilio_signature::FormBody::parse(b"Body=Hello+there&From=whatsapp%3A%2B1555")?;
    /// assert_eq!(form.value("From"), Some("whatsapp:+1555"));
    /// assert_eq!(form.value("To"), None);
    /// # Ok::<(), twilio_signature::SignatureError>(())
    /// ```
    pub fn value(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The decoded `(name, value)` pairs, in body order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + DoubleEndedIterator {
        self.pairs.iter().map(|pair| self.pair(pair))
    }

    fn pair(&self, (name, value): &(Range<usize>, Range<usize>)) -> (&str, &str) {
        // `parse` only keeps ranges on character boundaries, so `get` always succeeds.
        (
            self.buf.get(name.clone()).unwrap_or_default(),
            self.buf.get(value.clone()).unwrap_or_default(),
        )
    }
}

impl Params for FormBody {
    fn len(&self) -> usize {
        self.pairs.len()
    }
    fn key(&self, i: usize) -> &[u8] {
        &self.buf.as_bytes()[self.pairs[i].0.clone()]
    }
    fn value(&self, i: usize) -> &[u8] {
        &self.buf.as_bytes()[self.pairs[i].1.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: &str) -> Vec<(String, String)> {
        FormBody::parse(body.as_bytes())
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn decodes_like_whatwg() {
        assert_eq!(
            parsed("a=1&&b=x+y%20z&c&=v&d==e&%41%zz=%4"),
            [
                ("a", "1"),
                ("b", "x y z"),
                ("c", ""),
                ("", "v"),
                ("d", "=e"),
                ("A%zz", "%4")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(
            parsed("Body=%F0%9F%98%80%2B%26"),
            [("Body".to_owned(), "😀+&".to_owned())]
        );
        assert!(parsed("").is_empty());
    }

    #[test]
    fn finds_the_first_special_byte() {
        assert_eq!(special_bytes(b"abcdefgh"), None);
        assert_eq!(special_bytes(b"abc&efgh"), Some(3));
        assert_eq!(special_bytes(b"%bcdefg="), Some(0));
        assert_eq!(special_bytes(b"abcdefg+"), Some(7));
        assert_eq!(special_bytes(b"\x00\x01\x7f\x80\xff\x24\x26\x00"), Some(6));
        for byte in 0..=255u8 {
            let mut chunk = [b'a'; 8];
            chunk[5] = byte;
            let expected = matches!(byte, b'&' | b'=' | b'+' | b'%').then_some(5);
            assert_eq!(special_bytes(&chunk), expected, "{byte}");
        }
    }

    #[test]
    fn long_plain_runs_and_specials_at_chunk_edges() {
        assert_eq!(
            parsed("abcdefghijklmnop=qrstuvwx+yz%41%42CDEFGHIJ&k=12345678&&%3d=%3D"),
            [
                ("abcdefghijklmnop", "qrstuvwx yzABCDEFGHIJ"),
                ("k", "12345678"),
                ("=", "=")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn refuses_non_utf8() {
        for body in ["a=%FF", "%C3=1", "a=%E2%82", "a=%E2&b=%82%AC"] {
            assert!(
                matches!(
                    FormBody::parse(body.as_bytes()),
                    Err(SignatureError::InvalidBody { .. })
                ),
                "{body}"
            );
        }
        assert!(FormBody::parse(&[b'a', b'=', 0xFF]).is_err());
    }
}
