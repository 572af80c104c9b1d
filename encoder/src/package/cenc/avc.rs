//! H.264 NAL units as cbcs sees them: which units are coded slices, and how many bytes of a
//! slice are header. ISO/IEC 23001-7 §10.4 (and Apple's SAMPLE-AES rules) keep the NAL
//! header and the whole slice header clear, so a player can parse slices without the key.
//!
//! The header is parsed properly (ITU-T H.264 §7.3.3) rather than guessed with a fixed clear
//! prefix: its length depends on the SPS and PPS the slice names, and a guess long enough for
//! every slice would leave the start of every slice's data clear. The measurement matches the
//! reference packager's: the bits read, emulation-prevention bytes included, rounded up to
//! whole bytes, so both packagers choose the same subsamples.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// NAL unit type of a non-IDR coded slice.
const SLICE: u8 = 1;
/// NAL unit types of data-partitioned slices (Extended profile only).
const PARTITIONS: std::ops::RangeInclusive<u8> = 2..=4;
/// NAL unit type of an IDR coded slice.
const IDR_SLICE: u8 = 5;
/// NAL unit type of a sequence parameter set.
const SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
const PPS: u8 = 8;

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices (§7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

fn malformed(what: &str) -> Error {
    Error::Internal(format!("H.264 bitstream: {what}"))
}

/// Reads RBSP bits from an escaped NAL payload, skipping emulation-prevention bytes and
/// counting the escaped bytes it consumed.
struct Bits<'a> {
    data: &'a [u8],
    /// Escaped bytes loaded so far (emulation-prevention bytes included).
    loaded: usize,
    current: u8,
    /// Unread bits of `current`.
    left: u32,
    /// The last two loaded bytes, to spot `00 00 03`.
    last_two: u16,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, loaded: 0, current: 0, left: 0, last_two: 0xffff }
    }

    fn load(&mut self) -> Result<()> {
        if self.data.get(self.loaded) == Some(&3) && self.last_two == 0 {
            self.loaded += 1;
            self.last_two = 0xffff;
        }
        let byte = *self.data.get(self.loaded).ok_or_else(|| malformed("a header runs past its NAL unit"))?;
        self.loaded += 1;
        self.current = byte;
        self.left = 8;
        self.last_two = (self.last_two << 8) | u16::from(byte);
        Ok(())
    }

    fn bit(&mut self) -> Result<bool> {
        if self.left == 0 {
            self.load()?;
        }
        self.left -= 1;
        Ok((self.current >> self.left) & 1 == 1)
    }

    fn bits(&mut self, n: u32) -> Result<u32> {
        let mut value = 0u32;
        for _ in 0..n {
            value = (value << 1) | u32::from(self.bit()?);
        }
        Ok(value)
    }

    /// Unsigned Exp-Golomb (§9.1).
    fn ue(&mut self) -> Result<u32> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(malformed("Exp-Golomb code longer than 32 bits"));
            }
        }
        Ok(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)) as u32)
    }

    /// Signed Exp-Golomb (§9.1.1).
    fn se(&mut self) -> Result<i32> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }

    /// Escaped bytes holding every bit read so far (a partly read byte counts whole).
    fn bytes_read(&self) -> usize {
        self.loaded
    }
}

/// What slice headers need from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sps {
    chroma_array_type: u32,
    log2_max_frame_num: u32,
    pic_order_cnt_type: u32,
    log2_max_pic_order_cnt_lsb: u32,
    delta_pic_order_always_zero: bool,
    frame_mbs_only: bool,
}

/// What slice headers need from a picture parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pps {
    sps_id: u32,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    num_ref_idx_l0_default_active_minus1: u32,
    num_ref_idx_l1_default_active_minus1: u32,
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

/// Skips a `scaling_list` (§7.3.2.1.1.1); only its length matters here.
fn skip_scaling_list(r: &mut Bits<'_>, size: usize) -> Result<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

fn parse_sps(payload: &[u8]) -> Result<(u32, Sps)> {
    let mut r = Bits::new(payload);
    let profile_idc = r.bits(8)? as u8;
    r.bits(16)?; // constraint flags, level_idc
    let id = r.ue()?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let log2_max_frame_num = r.ue()? + 4;
    let pic_order_cnt_type = r.ue()?;
    let mut log2_max_pic_order_cnt_lsb = 0;
    let mut delta_pic_order_always_zero = false;
    match pic_order_cnt_type {
        0 => log2_max_pic_order_cnt_lsb = r.ue()? + 4,
        1 => {
            delta_pic_order_always_zero = r.bit()?;
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            for _ in 0..r.ue()? {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    r.ue()?; // pic_width_in_mbs_minus1
    r.ue()?; // pic_height_in_map_units_minus1
    let frame_mbs_only = r.bit()?;
    let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
    let sps = Sps {
        chroma_array_type,
        log2_max_frame_num,
        pic_order_cnt_type,
        log2_max_pic_order_cnt_lsb,
        delta_pic_order_always_zero,
        frame_mbs_only,
    };
    Ok((id, sps))
}

fn parse_pps(payload: &[u8]) -> Result<(u32, Pps)> {
    let mut r = Bits::new(payload);
    let id = r.ue()?;
    let sps_id = r.ue()?;
    let entropy_coding_mode = r.bit()?;
    let bottom_field_pic_order_in_frame_present = r.bit()?;
    if r.ue()? > 0 {
        // Flexible macroblock ordering: Baseline-only, never produced by our encoders, and
        // its slice_group_change_cycle would need the picture size in map units.
        return Err(malformed("slice groups (FMO) are not supported"));
    }
    let num_ref_idx_l0_default_active_minus1 = r.ue()?;
    let num_ref_idx_l1_default_active_minus1 = r.ue()?;
    let weighted_pred = r.bit()?;
    let weighted_bipred_idc = r.bits(2)?;
    r.se()?; // pic_init_qp_minus26
    r.se()?; // pic_init_qs_minus26
    r.se()?; // chroma_qp_index_offset
    let deblocking_filter_control_present = r.bit()?;
    r.bit()?; // constrained_intra_pred_flag
    let redundant_pic_cnt_present = r.bit()?;
    let pps = Pps {
        sps_id,
        entropy_coding_mode,
        bottom_field_pic_order_in_frame_present,
        num_ref_idx_l0_default_active_minus1,
        num_ref_idx_l1_default_active_minus1,
        weighted_pred,
        weighted_bipred_idc,
        deblocking_filter_control_present,
        redundant_pic_cnt_present,
    };
    Ok((id, pps))
}

/// Slice types, `slice_type % 5` (§7.4.3, table 7-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SliceType {
    P,
    B,
    I,
    Sp,
    Si,
}

impl SliceType {
    fn from(value: u32) -> Result<Self> {
        Ok(match value % 5 {
            0 => Self::P,
            1 => Self::B,
            2 => Self::I,
            3 => Self::Sp,
            _ if value < 10 => Self::Si,
            _ => return Err(malformed("slice_type out of range")),
        })
    }

    fn predicted(self) -> bool {
        matches!(self, Self::P | Self::Sp | Self::B)
    }
}

/// What a NAL unit is to cbcs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// Not a coded slice (SEI, SPS, PPS, AUD, ...): stays clear.
    Clear,
    /// A coded slice whose first `header` bytes (NAL header and slice header) stay clear.
    Slice {
        /// NAL header plus slice header, in escaped bytes.
        header: usize,
    },
}

/// The parameter sets in force, by id: those of the avcC, replaced by any sent in band.
#[derive(Debug, Clone, Default)]
pub(super) struct SliceHeaders {
    sps: HashMap<u32, Sps>,
    pps: HashMap<u32, Pps>,
}

impl SliceHeaders {
    /// Starts from the parameter sets of an `avcC`.
    pub(super) fn new(sps: &[Vec<u8>], pps: &[Vec<u8>]) -> Result<Self> {
        let mut headers = Self::default();
        for nal in sps.iter().chain(pps) {
            headers.classify(nal)?;
        }
        Ok(headers)
    }

    /// Classifies one NAL unit (without its length prefix), taking in parameter sets as
    /// they pass so that later slices are measured against them.
    pub(super) fn classify(&mut self, nal: &[u8]) -> Result<Unit> {
        let (&header, payload) = nal.split_first().ok_or_else(|| malformed("empty NAL unit"))?;
        let nal_type = header & 0x1f;
        let nal_ref_idc = (header >> 5) & 3;
        match nal_type {
            SPS => {
                let (id, sps) = parse_sps(payload)?;
                self.sps.insert(id, sps);
                Ok(Unit::Clear)
            }
            PPS => {
                let (id, pps) = parse_pps(payload)?;
                self.pps.insert(id, pps);
                Ok(Unit::Clear)
            }
            SLICE | IDR_SLICE => {
                let header = self.slice_header_len(payload, nal_type == IDR_SLICE, nal_ref_idc != 0)?;
                Ok(Unit::Slice { header: 1 + header })
            }
            t if PARTITIONS.contains(&t) => Err(malformed("data-partitioned slices are not supported")),
            _ => Ok(Unit::Clear),
        }
    }

    /// Escaped bytes of `slice_header()` at the start of `payload` (§7.3.3).
    fn slice_header_len(&self, payload: &[u8], idr: bool, reference: bool) -> Result<usize> {
        let mut r = Bits::new(payload);
        r.ue()?; // first_mb_in_slice
        let slice_type = SliceType::from(r.ue()?)?;
        let pps_id = r.ue()?;
        let pps = self.pps.get(&pps_id).ok_or_else(|| malformed("a slice names an unknown PPS"))?;
        let sps = self.sps.get(&pps.sps_id).ok_or_else(|| malformed("a PPS names an unknown SPS"))?;
        r.bits(sps.log2_max_frame_num)?; // frame_num
        let mut field_pic = false;
        if !sps.frame_mbs_only {
            field_pic = r.bit()?;
            if field_pic {
                r.bit()?; // bottom_field_flag
            }
        }
        if idr {
            r.ue()?; // idr_pic_id
        }
        if sps.pic_order_cnt_type == 0 {
            r.bits(sps.log2_max_pic_order_cnt_lsb)?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?; // delta_pic_order_cnt_bottom
            }
        }
        if sps.pic_order_cnt_type == 1 && !sps.delta_pic_order_always_zero {
            r.se()?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?;
            }
        }
        if pps.redundant_pic_cnt_present {
            r.ue()?;
        }
        if slice_type == SliceType::B {
            r.bit()?; // direct_spatial_mv_pred_flag
        }
        let mut l0 = pps.num_ref_idx_l0_default_active_minus1;
        let mut l1 = pps.num_ref_idx_l1_default_active_minus1;
        if slice_type.predicted() && r.bit()? {
            l0 = r.ue()?;
            if slice_type == SliceType::B {
                l1 = r.ue()?;
            }
        }
        if l0 > 31 || l1 > 31 {
            return Err(malformed("num_ref_idx_active_minus1 out of range"));
        }
        skip_ref_pic_list_modification(&mut r, slice_type)?;
        let weighted = (pps.weighted_pred && matches!(slice_type, SliceType::P | SliceType::Sp))
            || (pps.weighted_bipred_idc == 1 && slice_type == SliceType::B);
        if weighted {
            skip_pred_weight_table(&mut r, sps.chroma_array_type, slice_type, l0, l1)?;
        }
        if reference {
            skip_dec_ref_pic_marking(&mut r, idr)?;
        }
        if pps.entropy_coding_mode && !matches!(slice_type, SliceType::I | SliceType::Si) {
            r.ue()?; // cabac_init_idc
        }
        r.se()?; // slice_qp_delta
        if matches!(slice_type, SliceType::Sp | SliceType::Si) {
            if slice_type == SliceType::Sp {
                r.bit()?; // sp_for_switch_flag
            }
            r.se()?; // slice_qs_delta
        }
        if pps.deblocking_filter_control_present && r.ue()? != 1 {
            r.se()?; // slice_alpha_c0_offset_div2
            r.se()?; // slice_beta_offset_div2
        }
        Ok(r.bytes_read())
    }
}

/// §7.3.3.1.
fn skip_ref_pic_list_modification(r: &mut Bits<'_>, slice_type: SliceType) -> Result<()> {
    let lists = match slice_type {
        SliceType::I | SliceType::Si => 0,
        SliceType::B => 2,
        _ => 1,
    };
    for _ in 0..lists {
        if !r.bit()? {
            continue;
        }
        loop {
            match r.ue()? {
                3 => break,
                0..=2 => {
                    r.ue()?; // abs_diff_pic_num_minus1 or long_term_pic_num
                }
                _ => return Err(malformed("modification_of_pic_nums_idc out of range")),
            }
        }
    }
    Ok(())
}

/// §7.3.3.2.
fn skip_pred_weight_table(
    r: &mut Bits<'_>,
    chroma_array_type: u32,
    slice_type: SliceType,
    l0: u32,
    l1: u32,
) -> Result<()> {
    r.ue()?; // luma_log2_weight_denom
    if chroma_array_type != 0 {
        r.ue()?; // chroma_log2_weight_denom
    }
    let lists: &[u32] = if slice_type == SliceType::B { &[l0, l1] } else { &[l0] };
    for &minus1 in lists {
        for _ in 0..=minus1 {
            if r.bit()? {
                r.se()?;
                r.se()?;
            }
            if chroma_array_type != 0 && r.bit()? {
                for _ in 0..4 {
                    r.se()?;
                }
            }
        }
    }
    Ok(())
}

/// §7.3.3.3.
fn skip_dec_ref_pic_marking(r: &mut Bits<'_>, idr: bool) -> Result<()> {
    if idr {
        r.bits(2)?; // no_output_of_prior_pics_flag, long_term_reference_flag
        return Ok(());
    }
    if !r.bit()? {
        return Ok(());
    }
    loop {
        match r.ue()? {
            0 => return Ok(()),
            1 | 2 | 4 => {
                r.ue()?;
            }
            3 => {
                r.ue()?;
                r.ue()?;
            }
            5 => {}
            6 => {
                r.ue()?;
            }
            _ => return Err(malformed("memory_management_control_operation out of range")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes bits MSB first, for building headers in tests.
    #[derive(Default)]
    struct Writer {
        bytes: Vec<u8>,
        used: u32,
    }

    impl Writer {
        fn bit(&mut self, b: bool) -> &mut Self {
            if self.used.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if b {
                *self.bytes.last_mut().unwrap() |= 0x80 >> (self.used % 8);
            }
            self.used += 1;
            self
        }
        fn bits(&mut self, v: u32, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1 == 1);
            }
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let x = v + 1;
            let len = 32 - x.leading_zeros();
            self.bits(0, len - 1).bits(x, len)
        }
        fn se(&mut self, v: i32) -> &mut Self {
            self.ue(if v > 0 { (2 * v - 1) as u32 } else { (-2 * v) as u32 })
        }
    }

    fn sps() -> Vec<u8> {
        let mut w = Writer::default();
        w.bits(100, 8).bits(0, 8).bits(31, 8).ue(0); // High, level 3.1, id 0
        w.ue(1).ue(0).ue(0).bit(false).bit(false); // 4:2:0, 8 bit, no scaling matrices
        w.ue(0).ue(0).ue(2); // log2_max_frame_num 4, poc type 0, log2_max_poc_lsb 6
        w.ue(3).bit(false).ue(79).ue(44).bit(true); // refs, no gaps, 1280x720, frames only
        w.bit(true).bit(false).bit(false).bit(true); // direct_8x8, no cropping, no VUI, stop bit
        [&[0x67][..], &w.bytes].concat()
    }

    fn pps() -> Vec<u8> {
        let mut w = Writer::default();
        w.ue(0).ue(0).bit(true).bit(false).ue(0); // ids, CABAC, no bottom poc, one slice group
        w.ue(2).ue(0).bit(true).bits(2, 2); // 3 refs l0, 1 l1, weighted P, implicit bipred
        w.se(-3).se(0).se(-2).bit(true).bit(false).bit(false).bit(true); // deblocking control, stop
        [&[0x68][..], &w.bytes].concat()
    }

    #[test]
    fn an_idr_slice_header_is_measured_to_the_byte() {
        let mut h = SliceHeaders::new(&[sps()], &[pps()]).unwrap();
        let mut w = Writer::default();
        // first_mb 0, I slice (7), pps 0, frame_num, idr_pic_id, poc lsb, marking, qp, deblock.
        w.ue(0).ue(7).ue(0).bits(0, 4).ue(0).bits(0, 6).bits(0, 2).se(5).ue(0).se(0).se(0);
        let header_bits = w.used;
        w.bits(0xabcd, 16); // slice data
        let nal = [&[0x65][..], &w.bytes].concat();
        assert_eq!(h.classify(&nal).unwrap(), Unit::Slice { header: 1 + header_bits.div_ceil(8) as usize });
    }

    #[test]
    fn a_weighted_p_slice_skips_its_weight_table() {
        let mut h = SliceHeaders::new(&[sps()], &[pps()]).unwrap();
        let mut w = Writer::default();
        w.ue(0).ue(5).ue(0).bits(3, 4).bits(6, 6); // P slice
        w.bit(true).ue(1); // override: 2 refs in l0
        w.bit(true).ue(0).ue(4).ue(3); // reordering: one modification, then end
        w.ue(5).ue(0); // luma and chroma denominators
        w.bit(true).se(2).se(-1).bit(false); // ref 0: luma weights, no chroma
        w.bit(false).bit(true).se(1).se(1).se(-1).se(0); // ref 1: chroma weights
        w.bit(true).ue(1).ue(0).ue(0); // adaptive marking: one mmco then end
        w.ue(1).se(-2).ue(1); // cabac_init_idc, qp delta, deblocking off
        let header_bits = w.used;
        w.bits(0x5a, 8);
        let nal = [&[0x41][..], &w.bytes].concat();
        assert_eq!(h.classify(&nal).unwrap(), Unit::Slice { header: 1 + header_bits.div_ceil(8) as usize });
    }

    #[test]
    fn emulation_prevention_bytes_count_as_header() {
        let mut r = Bits::new(&[0x00, 0x00, 0x03, 0x01, 0xff]);
        assert_eq!(r.bits(24).unwrap(), 1, "the 03 is skipped");
        assert_eq!(r.bytes_read(), 4);
    }

    #[test]
    fn non_slices_stay_clear_and_unknown_parameter_sets_are_refused() {
        let mut h = SliceHeaders::new(&[sps()], &[pps()]).unwrap();
        assert_eq!(h.classify(&[0x06, 5, 1, 0xff, 0x80]).unwrap(), Unit::Clear); // SEI
        assert_eq!(h.classify(&[0x09, 0xf0]).unwrap(), Unit::Clear); // AUD
        let mut w = Writer::default();
        w.ue(0).ue(7).ue(3).bits(0, 8);
        assert!(h.classify(&[&[0x65][..], &w.bytes].concat()).is_err());
        assert!(h.classify(&[0x22, 0]).is_err(), "data partitions");
    }
}
