//! Encoded elementary-stream parts: what encode and audio tasks leave in temporary storage
//! and the packager reads. A JSON header (codec, timescale, the sample entry FFmpeg would
//! write for it) followed by length-prefixed packets; small enough to stream, plain enough
//! to inspect, independent of any container's timestamp rounding.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"ESPART1\n";

/// Describes the stream in a part file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EsHeader {
    /// "h264", "vp9", "av1", "aac" or "opus".
    pub codec: String,
    /// Ticks per second of every timestamp in the file.
    pub timescale: u32,
    /// Picture width (0 for audio).
    pub width: u32,
    /// Picture height (0 for audio).
    pub height: u32,
    /// Audio sample rate (0 for video).
    pub sample_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u32,
    /// Average frame rate (0 for audio).
    pub frame_rate: f64,
    /// An `ftyp`+`moov` FFmpeg wrote for this encoder, hex: the packager takes the codec's
    /// sample entry (avcC, vpcC, av1C, esds, dOps) from it rather than rebuilding it.
    pub init_template: String,
}

/// One coded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsPacket {
    /// Presentation time in header ticks.
    pub pts: i64,
    /// Decode time in header ticks.
    pub dts: i64,
    /// Display duration in header ticks.
    pub duration: u32,
    /// Random access point.
    pub keyframe: bool,
    /// Coded bytes, as the encoder produced them.
    pub data: Vec<u8>,
}

/// Writes a part file; call [`EsWriter::finish`] to make it visible.
pub struct EsWriter {
    out: BufWriter<File>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    packets: u64,
}

impl EsWriter {
    /// Starts a part at `path` (written to a temporary sibling until finished).
    pub fn create(path: &Path, header: &EsHeader) -> Result<Self> {
        let tmp = crate::store::temp_sibling(path);
        let file = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let json = serde_json::to_vec(header).map_err(|e| Error::Internal(e.to_string()))?;
        let io = Error::io("write", &tmp);
        (|| {
            out.write_all(MAGIC)?;
            out.write_all(&(json.len() as u32).to_le_bytes())?;
            out.write_all(&json)
        })()
        .map_err(io)?;
        Ok(Self { out, tmp, path: path.to_owned(), packets: 0 })
    }

    /// Appends a packet.
    pub fn write(&mut self, p: &EsPacket) -> Result<()> {
        let io = Error::io("write", &self.tmp);
        let out = &mut self.out;
        (|| {
            out.write_all(&p.pts.to_le_bytes())?;
            out.write_all(&p.dts.to_le_bytes())?;
            out.write_all(&p.duration.to_le_bytes())?;
            out.write_all(&[u8::from(p.keyframe)])?;
            out.write_all(&(p.data.len() as u32).to_le_bytes())?;
            out.write_all(&p.data)
        })()
        .map_err(io)?;
        self.packets += 1;
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes, syncs and renames into place.
    pub fn finish(self) -> Result<()> {
        let file = self.out.into_inner().map_err(|e| Error::io("flush", &self.tmp)(e.into_error()))?;
        file.sync_all().map_err(Error::io("sync", &self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(Error::io("rename", &self.path))
    }
}

/// Reads a part file packet by packet.
pub struct EsReader {
    input: BufReader<File>,
    header: EsHeader,
    path: String,
}

impl EsReader {
    /// Opens a part and reads its header.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io("open", path))?;
        let mut input = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(Error::io("read", path))?;
        if &magic != MAGIC {
            return Err(Error::Internal(format!("{} is not an encoded part", path.display())));
        }
        let mut len = [0u8; 4];
        input.read_exact(&mut len).map_err(Error::io("read", path))?;
        let mut json = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut json).map_err(Error::io("read", path))?;
        let header = serde_json::from_slice(&json).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        Ok(Self { input, header, path: path.display().to_string() })
    }

    /// The part's header.
    pub fn header(&self) -> &EsHeader {
        &self.header
    }

    /// The next packet, or `None` at the end.
    pub fn next_packet(&mut self) -> Result<Option<EsPacket>> {
        let mut fixed = [0u8; 25];
        match self.input.read_exact(&mut fixed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io("read", &self.path)(e)),
        }
        let pts = i64::from_le_bytes(fixed[0..8].try_into().expect("8 bytes"));
        let dts = i64::from_le_bytes(fixed[8..16].try_into().expect("8 bytes"));
        let duration = u32::from_le_bytes(fixed[16..20].try_into().expect("4 bytes"));
        let keyframe = fixed[20] != 0;
        let len = u32::from_le_bytes(fixed[21..25].try_into().expect("4 bytes")) as usize;
        let mut data = vec![0u8; len];
        self.input.read_exact(&mut data).map_err(Error::io("read", &self.path))?;
        Ok(Some(EsPacket { pts, dts, duration, keyframe, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("es-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.es");
        let header = EsHeader {
            codec: "h264".into(),
            timescale: 90000,
            width: 2,
            height: 2,
            sample_rate: 0,
            channels: 0,
            frame_rate: 30.0,
            init_template: "00".into(),
        };
        let mut w = EsWriter::create(&path, &header).unwrap();
        let p = EsPacket { pts: 3000, dts: -3000, duration: 3000, keyframe: true, data: vec![1, 2, 3] };
        w.write(&p).unwrap();
        assert!(!path.exists(), "invisible until finished");
        w.finish().unwrap();
        let mut r = EsReader::open(&path).unwrap();
        assert_eq!(r.header(), &header);
        assert_eq!(r.next_packet().unwrap(), Some(p));
        assert_eq!(r.next_packet().unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
