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

/// Appends the sorted, de-duplicated `key value key value …` tail of the string to sign to `out`.
///
/// Sorting `(key, value)` pairs lexicographically gives exactly "keys ascending, each key's values
/// ascending"; equal pairs end up adjacent, so de-duplication is a comparison with the previous
/// pair. Byte order of UTF-8 is code-point order, as in twilio-python.
pub(crate) fn write_tail<P: Params + ?Sized>(params: &P, out: &mut Vec<u8>) {
    let n = params.len();
    if n == 0 {
        return;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| {
        params
            .key(a)
            .cmp(params.key(b))
            .then_with(|| params.value(a).cmp(params.value(b)))
    });
    out.reserve(
        (0..n)
            .map(|i| params.key(i).len() + params.value(i).len())
            .sum(),
    );
    let mut previous: Option<usize> = None;
    for i in order {
        let (key, value) = (params.key(i), params.value(i));
        if let Some(p) = previous
            && params.key(p) == key
            && params.value(p) == value
        {
            continue;
        }
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        previous = Some(i);
    }
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

    #[test]
    fn empty_values_keep_their_key() {
        assert_eq!(tail(&[("Body", ""), ("A", "x")]), "AxBody");
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
