#![no_main]
//! Feeds arbitrary bytes, in two parts, to a `ChunkReader` and reads until it needs more
//! input or fails.

use bytes::BytesMut;
use corecast::rtmp::proto::chunk::{ChunkReader, ControlMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split).min(data.len());
    let mut reader = ChunkReader::new(1 << 16);
    let mut buf = BytesMut::new();
    for part in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(part);
        loop {
            let before = reader.bytes_read();
            match reader.read(&mut buf) {
                Ok(Some(msg)) => {
                    assert!(msg.body.len() <= 1 << 16);
                    assert!(reader.bytes_read() > before);
                    if let Ok(Some(ControlMessage::SetChunkSize(n))) =
                        ControlMessage::parse(msg.type_id, &msg.body)
                    {
                        let _ = reader.set_chunk_size(n);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert!(reader.bytes_read() <= data.len() as u64);
});
