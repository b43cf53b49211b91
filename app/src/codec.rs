//! How server functions' answers (and their errors) travel: JSON, read in the browser from a `&str`.
//!
//! The JSON decoder is generic over where it reads from, and every type it decodes is compiled once per
//! source. The browser already decodes the stream's events and the page's serialized resources from
//! strings (`serde_json::from_str`); server_fn's own [`server_fn::codec::JsonEncoding`] decodes answers from
//! bytes (`from_slice`), which compiled every answer type, the snapshot included, a second time into the
//! WASM (about 170 KB before wasm-opt). Decoding answers from a `&str` too leaves one copy.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use server_fn::codec::Post;
use server_fn::{ContentType, Decodes, Encodes, Format, FormatType};

/// JSON like server_fn's own, decoded from the body as text.
pub struct JsonTextEncoding;

/// The output (and error) encoding of every server function: `#[server(output = JsonText)]`.
pub type JsonText = Post<JsonTextEncoding>;

impl ContentType for JsonTextEncoding {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for JsonTextEncoding {
    const FORMAT_TYPE: Format = Format::Text;
}

impl<T: Serialize> Encodes<T> for JsonTextEncoding {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        serde_json::to_vec(output).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for JsonTextEncoding {
    type Error = serde_json::Error;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        let text = std::str::from_utf8(&bytes).map_err(serde::de::Error::custom)?;
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_bad_bytes_are_an_error() {
        let bytes = <JsonTextEncoding as Encodes<Vec<u32>>>::encode(&vec![1, 2]).unwrap();
        let back: Vec<u32> = JsonTextEncoding::decode(bytes).unwrap();
        assert_eq!(back, [1, 2]);
        let bad = <JsonTextEncoding as Decodes<Vec<u32>>>::decode(Bytes::from_static(b"[1,\xff]"));
        assert!(bad.is_err());
    }
}
