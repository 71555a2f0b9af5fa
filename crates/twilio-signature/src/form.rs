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

/// A decoded form body: every name and value in one buffer.
#[derive(Debug, Default)]
pub(crate) struct FormParams {
    buf: String,
    pairs: Vec<(Range<usize>, Range<usize>)>,
}

impl FormParams {
    /// Decodes `body`.
    ///
    /// # Errors
    ///
    /// [`SignatureError::InvalidBody`] when a decoded name or value is not UTF-8.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, SignatureError> {
        const NOT_UTF8: SignatureError = SignatureError::InvalidBody {
            reason: "a form name or value is not UTF-8 after percent-decoding",
        };
        let mut buf = Vec::with_capacity(body.len());
        let mut ranges = Vec::new();
        for (name, value) in pairs(body) {
            let name_start = buf.len();
            decode_into(name, &mut buf);
            let value_start = buf.len();
            decode_into(value, &mut buf);
            ranges.push((name_start..value_start, value_start..buf.len()));
        }
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

    /// The decoded `(name, value)` pairs, in body order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|(name, value)| (&self.buf[name.clone()], &self.buf[value.clone()]))
    }
}

impl Params for FormParams {
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
        FormParams::parse(body.as_bytes())
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
    fn refuses_non_utf8() {
        for body in ["a=%FF", "%C3=1", "a=%E2%82", "a=%E2&b=%82%AC"] {
            assert!(
                matches!(
                    FormParams::parse(body.as_bytes()),
                    Err(SignatureError::InvalidBody { .. })
                ),
                "{body}"
            );
        }
        assert!(FormParams::parse(&[b'a', b'=', 0xFF]).is_err());
    }
}
