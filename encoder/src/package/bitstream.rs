//! Sample-format conversions between what encoders emit and what ISO BMFF stores.

/// H.264 Annex B (start codes) to length-prefixed NAL units, as `avc1` samples need.
pub fn annexb_to_length_prefixed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in annexb_nal_units(data) {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// The NAL units of an Annex B byte stream, without start codes or trailing zeros.
pub fn annexb_nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&next| next - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            units.push(&data[s..end]);
        }
    }
    units
}

/// Whether a buffer looks like Annex B (starts with a start code).
pub fn is_annexb(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])
}

/// Drops AV1 temporal delimiter and padding OBUs, which ISO BMFF samples must not carry.
pub fn strip_av1_delimiters(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0;
    while pos < data.len() {
        let header = data[pos];
        let obu_type = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut cursor = pos + 1 + usize::from(has_extension);
        let payload = if has_size {
            let Some((size, used)) = leb128(&data[cursor.min(data.len())..]) else { break };
            cursor += used;
            size
        } else {
            data.len().saturating_sub(cursor)
        };
        let end = (cursor + payload).min(data.len());
        if obu_type != 2 && obu_type != 15 {
            out.extend_from_slice(&data[pos..end]);
        }
        pos = end;
    }
    out
}

fn leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, &b) in data.iter().take(8).enumerate() {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annexb_with_mixed_start_codes() {
        let data = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0];
        assert_eq!(
            annexb_to_length_prefixed(&data),
            [0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 3, 0x65, 4, 5]
        );
        assert!(is_annexb(&data));
    }

    #[test]
    fn av1_temporal_delimiter_removed() {
        // TD (type 2, size 0) then a frame OBU (type 6) of 2 bytes.
        let data = [0x12, 0x00, 0x32, 0x02, 0xAA, 0xBB];
        assert_eq!(strip_av1_delimiters(&data), [0x32, 0x02, 0xAA, 0xBB]);
    }
}
