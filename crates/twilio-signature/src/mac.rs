//! The keyed MAC and the raw signature bytes. The key is turned into HMAC's inner and outer hash
//! states once; every signature clones those states instead of re-keying, and the raw token is
//! not kept anywhere. Base64 is done here too: the header has one fixed shape per algorithm, and
//! a strict decoder for exactly that shape is a few lines and much cheaper than a general one.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Algorithm, SignatureError};

/// HMAC's block size for both SHA-1 and SHA-256.
const BLOCK: usize = 64;

/// HMAC's key derivation (RFC 2104): keys up to a block are zero-padded, longer keys hashed first.
/// Done here so that keying cannot fail and no `expect` is needed.
fn block_key<D: Digest>(secret: &[u8]) -> [u8; BLOCK] {
    let mut key = [0u8; BLOCK];
    if secret.len() <= BLOCK {
        key[..secret.len()].copy_from_slice(secret);
    } else {
        let hash = D::digest(secret);
        key[..hash.len()].copy_from_slice(&hash);
    }
    key
}

/// HMAC state right after keying, for the validator's algorithm.
#[derive(Clone)]
pub(crate) enum KeyedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
}

impl KeyedMac {
    pub(crate) fn new(secret: &[u8], algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(Hmac::new(&block_key::<Sha1>(secret).into())),
            Algorithm::Sha256 => Self::Sha256(Hmac::new(&block_key::<Sha256>(secret).into())),
        }
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            Self::Sha1(_) => Algorithm::Sha1,
            Self::Sha256(_) => Algorithm::Sha256,
        }
    }

    /// The MAC of the concatenation of `pieces`.
    pub(crate) fn tag(&self, pieces: &[&[u8]]) -> Tag {
        fn run<M: Mac + Clone>(keyed: &M, pieces: &[&[u8]]) -> Tag {
            let mut mac = keyed.clone();
            for piece in pieces {
                mac.update(piece);
            }
            Tag::from_slice(&mac.finalize().into_bytes())
        }
        match self {
            Self::Sha1(mac) => run(mac, pieces),
            Self::Sha256(mac) => run(mac, pieces),
        }
    }
}

/// Raw MAC bytes: 20 for HMAC-SHA1, 32 for HMAC-SHA256.
#[derive(Clone, Copy)]
pub(crate) struct Tag {
    bytes: [u8; 32],
    len: usize,
}

impl Tag {
    fn from_slice(raw: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        let len = raw.len().min(32);
        bytes[..len].copy_from_slice(&raw[..len]);
        Self { bytes, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Padded standard base64, the form of the `X-Twilio-Signature` header.
    pub(crate) fn to_base64(self) -> String {
        let bytes = self.as_bytes();
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> shift & 0x3f) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Decodes an `X-Twilio-Signature` header for `algorithm`.
    ///
    /// Only canonical padded base64 of exactly the MAC's length is accepted (one `=`, no
    /// non-zero trailing bits, no whitespace), so decoding is a bijection: comparing raw bytes is
    /// the same as comparing the header with the base64 of the expected MAC, without encoding it.
    pub(crate) fn decode(header: &str, algorithm: Algorithm) -> Result<Self, SignatureError> {
        if header.is_empty() {
            return Err(SignatureError::Missing);
        }
        if header.len() != algorithm.signature_len() {
            return Err(SignatureError::Malformed);
        }
        // 20 and 32 bytes both end in one 2-byte group: full quads, then `xyz=`.
        let (quads, last) = header.as_bytes().split_at(header.len() - 4);
        let mut bytes = [0u8; 32];
        let mut invalid = 0u8;
        let mut len = 0;
        for (quad, out) in quads.chunks_exact(4).zip(bytes.chunks_exact_mut(3)) {
            let [a, b, c, d] =
                [quad[0], quad[1], quad[2], quad[3]].map(|ch| DECODE[usize::from(ch)]);
            invalid |= a | b | c | d;
            let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
            out.copy_from_slice(&n.to_be_bytes()[1..]);
            len += 3;
        }
        let [a, b, c] = [last[0], last[1], last[2]].map(|ch| DECODE[usize::from(ch)]);
        invalid |= a | b | c;
        if invalid & 0xc0 != 0 || last[3] != b'=' || c & 0x03 != 0 || len + 2 != algorithm.mac_len()
        {
            return Err(SignatureError::Malformed);
        }
        bytes[len] = a << 2 | b >> 4;
        bytes[len + 1] = b << 4 | c >> 2;
        Ok(Self::from_slice(&bytes[..len + 2]))
    }

    /// Constant-time equality (the lengths are public: they follow from the algorithm).
    pub(crate) fn matches(&self, other: &Self) -> bool {
        self.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

/// The standard base64 alphabet.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Value of each byte in [`ALPHABET`]; `0xff` for every other byte.
const DECODE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Lowercase hex SHA-256 of `body`, the form of the `bodySHA256` query parameter.
pub(crate) fn sha256_hex(body: &[u8]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(body);
    let mut out = [0u8; 64];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest.iter()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

/// Constant-time comparison of the body's hex hash with the `bodySHA256` value.
pub(crate) fn body_hash_matches(body: &[u8], expected_hex: &[u8]) -> bool {
    sha256_hex(body).as_slice().ct_eq(expected_hex).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_hashed_like_rfc_2104() {
        // RFC 2202 test case 6: 80-byte key of 0xaa.
        let mac = KeyedMac::new(&[0xaa; 80], Algorithm::Sha1);
        let tag = mac.tag(&[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(
            tag.as_bytes(),
            [
                0xaa, 0x4a, 0xe5, 0xe1, 0x52, 0x72, 0xd0, 0x0e, 0x95, 0x70, 0x56, 0x37, 0xce, 0x8a,
                0x3b, 0x55, 0xed, 0x40, 0x21, 0x12
            ]
        );
        // RFC 4231 test case 6: 131-byte key of 0xaa.
        let mac = KeyedMac::new(&[0xaa; 131], Algorithm::Sha256);
        let tag = mac.tag(&[
            b"Test Using Larger Than Block-",
            b"Size Key - Hash Key First",
        ]);
        assert_eq!(
            tag.as_bytes(),
            [
                0x60, 0xe4, 0x31, 0x59, 0x1e, 0xe0, 0xb6, 0x7f, 0x0d, 0x8a, 0x26, 0xaa, 0xcb, 0xf5,
                0xb7, 0x7f, 0x8e, 0x0b, 0xc6, 0x21, 0x37, 0x28, 0xc5, 0x14, 0x05, 0x46, 0x04, 0x0f,
                0x0e, 0xe3, 0x7f, 0x54,
            ]
        );
    }

    #[test]
    fn decode_is_strict() {
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert!(Tag::decode(good, Algorithm::Sha1).is_ok());
        assert_eq!(
            Tag::decode("", Algorithm::Sha1).err(),
            Some(SignatureError::Missing)
        );
        for bad in [
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ",   // unpadded
            "0/KCTR6DLpKmkAf8muzZqo1nDgR=",  // non-zero trailing bits
            "0_KCTR6DLpKmkAf8muzZqo1nDgQ=",  // URL-safe alphabet
            " 0/KCTR6DLpKmkAf8muzZqo1nDgQ=", // whitespace
            "0/KCTR6DLpKmkAf8muzZqo1nDg==",  // wrong padding
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ==", // too long
            "ééééééééééééééé",               // 30 bytes of UTF-8
        ] {
            assert!(
                matches!(
                    Tag::decode(bad, Algorithm::Sha1),
                    Err(SignatureError::Malformed)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn base64_round_trips_for_both_lengths() {
        let sha1 = Tag::from_slice(&[0xfb; 20]);
        assert_eq!(sha1.to_base64(), "+/v7+/v7+/v7+/v7+/v7+/v7+/s=");
        let sha256 = Tag::from_slice(&(0u8..32).collect::<Vec<_>>());
        assert_eq!(
            sha256.to_base64(),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        );
        for (tag, algorithm) in [(sha1, Algorithm::Sha1), (sha256, Algorithm::Sha256)] {
            let decoded = Tag::decode(&tag.to_base64(), algorithm).unwrap();
            assert_eq!(decoded.as_bytes(), tag.as_bytes());
        }
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(
            &sha256_hex(b"{}")[..],
            b"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
