//! The parameter half of the string to sign: each distinct key in ascending byte order, each of
//! its distinct values in ascending byte order, appended as `key` then `value`.

/// Indexed access to `(key, value)` pairs, so caller slices and decoded form bodies share one
/// sort without copying any string.
pub(crate) trait Params {
    fn len(&self) -> usize;
    fn key(&self, i: usize) -> &[u8];
    fn value(&self, i: usize) -> &[u8];
}

impl<K: AsRef<str>, V: AsRef<str>> Params for [(K, V)] {
    fn len(&self) -> usize {
        <[(K, V)]>::len(self)
    }
    fn key(&self, i: usize) -> &[u8] {
        self[i].0.as_ref().as_bytes()
    }
    fn value(&self, i: usize) -> &[u8] {
        self[i].1.as_ref().as_bytes()
    }
}

/// Up to this many parameters are sorted as packed integers on the stack (the index must fit
/// in the low byte); more take the general path.
const PACKED_MAX: usize = 48;

/// The first seven bytes of `key`, zero-padded, big-endian. Comparing these orders keys as
/// byte-wise comparison does, except that ties need the full comparison.
fn prefix7(key: &[u8]) -> u64 {
    if let Some(first) = key.first_chunk::<8>() {
        return u64::from_be_bytes(*first) >> 8;
    }
    key.iter()
        .take(7)
        .enumerate()
        .fold(0, |prefix, (i, &b)| prefix | u64::from(b) << (48 - 8 * i))
}

/// Sorts a short run by `cmp`. The standard library's sorts may panic when `cmp` is not a total
/// order, and `cmp` reads the caller's strings again on every call: an `AsRef<str>` that answers
/// differently each time (a caller's bug, never request data) must not make validation panic.
/// Runs of equal 7-byte prefixes are short (`MediaUrl0`/`MediaUrl1`, a repeated key), so the
/// quadratic worst case does not matter.
fn insertion_sort(run: &mut [u64], mut cmp: impl FnMut(u64, u64) -> std::cmp::Ordering) {
    for i in 1..run.len() {
        let mut j = i;
        while j > 0 && cmp(run[j - 1], run[j]) == std::cmp::Ordering::Greater {
            run.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Full `(key, value)` byte order of parameters `a` and `b`.
fn compare<P: Params + ?Sized>(params: &P, a: usize, b: usize) -> std::cmp::Ordering {
    params
        .key(a)
        .cmp(params.key(b))
        .then_with(|| params.value(a).cmp(params.value(b)))
}

/// Copies `src` into `dst` of the same length. Names and values are mostly short, and a `memcpy`
/// call per piece costs more than the copy: two overlapping fixed-size moves do it inline.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if dst.len() != n {
        return;
    }
    match n {
        0..=3 => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s),
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// Writes pieces into a buffer pre-sized to their total length; if a piece does not fit (an
/// `AsRef` that answered differently the second time) it falls back to growing the buffer.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    pos: usize,
}

impl Writer<'_> {
    #[inline(always)]
    fn push(&mut self, piece: &[u8]) {
        let end = self.pos + piece.len();
        match self.out.get_mut(self.pos..end) {
            Some(dst) => copy_short(dst, piece),
            None => {
                self.out.truncate(self.pos);
                self.out.extend_from_slice(piece);
            }
        }
        self.pos = end;
    }

    fn finish(self) {
        self.out.truncate(self.pos);
    }
}

/// Appends the sorted, de-duplicated `key value key value …` tail of the string to sign to `out`.
///
/// Sorting `(key, value)` pairs lexicographically gives exactly "keys ascending, each key's values
/// ascending"; equal pairs end up adjacent, so de-duplication is a comparison with the previous
/// pair. Byte order of UTF-8 is code-point order, as in twilio-python. Only indices are sorted,
/// never the strings: packed as `prefix7(key) << 8 | index` they sort as plain integers, and only
/// runs with equal prefixes (`MediaUrl0`, `MediaUrl1`, repeated keys) need string comparisons.
pub(crate) fn write_tail<P: Params + ?Sized>(params: &P, out: &mut Vec<u8>) {
    let n = params.len();
    if n == 0 {
        return;
    }
    let total: usize = (0..n)
        .map(|i| params.key(i).len() + params.value(i).len())
        .sum();
    let pos = out.len();
    out.resize(pos + total, 0);
    let mut writer = Writer { out, pos };
    if n <= PACKED_MAX {
        let mut packed = [0u64; PACKED_MAX];
        let packed = &mut packed[..n];
        for (i, slot) in packed.iter_mut().enumerate() {
            // `i < PACKED_MAX`, so it fits in the low byte.
            *slot = prefix7(params.key(i)) << 8 | i as u64;
        }
        packed.sort_unstable();
        // Equal prefixes (`MediaUrl0`/`MediaUrl1`, repeated keys) are sorted again in full.
        let mut start = 0;
        for end in 1..=n {
            if end == n || packed[end] >> 8 != packed[start] >> 8 {
                if end - start > 1 {
                    insertion_sort(&mut packed[start..end], |a, b| {
                        compare(params, (a & 0xff) as usize, (b & 0xff) as usize)
                    });
                }
                start = end;
            }
        }
        // Pairs with different prefixes differ, so only equal prefixes need the duplicate check.
        let mut previous: Option<u64> = None;
        for &p in packed.iter() {
            let i = (p & 0xff) as usize;
            let (key, value) = (params.key(i), params.value(i));
            if let Some(q) = previous
                && q >> 8 == p >> 8
                && params.key((q & 0xff) as usize) == key
                && params.value((q & 0xff) as usize) == value
            {
                continue;
            }
            writer.push(key);
            writer.push(value);
            previous = Some(p);
        }
    } else {
        // Each pair read once, so the sort sees fixed strings (see `insertion_sort`).
        let mut pairs: Vec<(&[u8], &[u8])> =
            (0..n).map(|i| (params.key(i), params.value(i))).collect();
        pairs.sort_unstable();
        pairs.dedup();
        for (key, value) in pairs {
            writer.push(key);
            writer.push(value);
        }
    }
    writer.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(params: &[(&str, &str)]) -> String {
        let mut out = Vec::new();
        write_tail(params, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sorts_keys_then_values_and_drops_duplicates() {
        assert_eq!(
            tail(&[
                ("b", "2"),
                ("a", "9"),
                ("b", "1"),
                ("a", "9"),
                ("B", ""),
                ("b", "1")
            ]),
            "B".to_owned() + "a9" + "b1" + "b2"
        );
    }

    /// A caller type whose `as_ref` answers differently on every call.
    struct Flaky(std::cell::Cell<u32>);

    impl AsRef<str> for Flaky {
        fn as_ref(&self) -> &str {
            let n = self.0.get().wrapping_add(1);
            self.0.set(n);
            ["MediaUrl0", "MediaUrl1", "MediaUrl2"][(n % 3) as usize]
        }
    }

    #[test]
    fn a_caller_type_that_changes_its_answers_cannot_make_it_panic() {
        for n in [10, 47, 48, 49, 300] {
            let pairs: Vec<(Flaky, Flaky)> = (0..n)
                .map(|i| {
                    (
                        Flaky(std::cell::Cell::new(i)),
                        Flaky(std::cell::Cell::new(i * 7)),
                    )
                })
                .collect();
            let mut out = Vec::new();
            write_tail(pairs.as_slice(), &mut out);
            assert!(!out.is_empty());
        }
    }

    #[test]
    fn empty_values_keep_their_key() {
        assert_eq!(tail(&[("Body", ""), ("A", "x")]), "AxBody");
    }

    #[test]
    fn prefix_ties_fall_back_to_full_comparison() {
        assert_eq!(
            tail(&[
                ("ab\0", "x"),
                ("ab", "y"),
                ("abcdefghZ", "1"),
                ("abcdefghA", "2"),
                ("abcdefgh", "3"),
                ("abcdefg", "4"),
                ("abcdefgh", "0"),
                ("abcdefgh", "3"),
            ]),
            "aby".to_owned()
                + "ab\0x"
                + "abcdefg4"
                + "abcdefgh0"
                + "abcdefgh3"
                + "abcdefghA2"
                + "abcdefghZ1"
        );
        // 48 parameters take the packed path, 100 the general one.
        for n in [48, 49, 100] {
            let many: Vec<(String, String)> = (0..n)
                .rev()
                .map(|i| (format!("Key{i:03}"), format!("{}", i % 7)))
                .collect();
            let expected: String = (0..n).map(|i| format!("Key{i:03}{}", i % 7)).collect();
            let borrowed: Vec<(&str, &str)> =
                many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(tail(&borrowed), expected);
        }
    }

    #[test]
    fn byte_order_not_utf16_order() {
        // U+1F600 (F0 9F 98 80) sorts after U+FF5E (EF BD 9E) in UTF-8 and code-point order.
        assert_eq!(tail(&[("k", "😀"), ("k", "～")]), "k～k😀");
        assert_eq!(
            tail(&[("MediaUrl2", "x"), ("MediaUrl10", "y")]),
            "MediaUrl10yMediaUrl2x"
        );
    }
}
