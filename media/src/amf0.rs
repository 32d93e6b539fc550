//! AMF0 (Action Message Format 0) values: decode and encode, complete per the AMF0 spec.
//!
//! AMF3 values are not decoded: an AMF0 `avmplus-object` marker (0x11) switches to AMF3 for the
//! rest of the buffer, which is kept untouched as [`Amf0Value::Avmplus`] so data messages pass
//! through unchanged.

use bytes::{Bytes, BytesMut};

/// Limits applied while decoding untrusted AMF0.
#[derive(Debug, Clone, Copy)]
pub struct Amf0Limits {
    /// Maximum nesting of objects/arrays.
    pub max_depth: usize,
    /// Maximum number of properties/elements in any one object or array.
    pub max_items: usize,
}

impl Default for Amf0Limits {
    fn default() -> Self {
        Amf0Limits { max_depth: 32, max_items: 4096 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    /// Anonymous object; properties in wire order.
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Reference to an earlier complex value (index), kept as-is.
    Reference(u16),
    /// ECMA array: associative, properties in wire order (the count hint is not trusted).
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the epoch, and the (reserved) time-zone field.
    Date { millis: f64, time_zone: i16 },
    LongString(String),
    Unsupported,
    XmlDocument(String),
    TypedObject { class_name: String, properties: Vec<(String, Amf0Value)> },
    /// AMF3 data following an avmplus marker: the raw bytes after the marker, untouched.
    Avmplus(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    #[error("AMF0: input ended inside a value")]
    Short,
    #[error("AMF0: unknown type marker 0x{0:02x}")]
    UnknownMarker(u8),
    #[error("AMF0: string is not valid UTF-8")]
    InvalidUtf8,
    #[error("AMF0: nesting deeper than {0}")]
    TooDeep(usize),
    #[error("AMF0: more than {0} items in one object or array")]
    TooManyItems(usize),
    #[error("AMF0: object end marker outside an object")]
    UnexpectedObjectEnd,
}

impl Amf0Value {
    /// The string inside `String` or `LongString`.
    pub fn as_str(&self) -> Option<&str> {
        todo!()
    }
    /// The number inside `Number`.
    pub fn as_f64(&self) -> Option<f64> {
        todo!()
    }
    /// Property `key` of an `Object`, `EcmaArray` or `TypedObject`.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        todo!()
    }
}

/// Decode one value from the front of `buf`, advancing it past the value.
pub fn decode(buf: &mut &[u8], limits: &Amf0Limits) -> Result<Amf0Value, Amf0Error> {
    todo!()
}

/// Decode every value in `buf` (e.g. a command or data message body).
pub fn decode_all(buf: &[u8], limits: &Amf0Limits) -> Result<Vec<Amf0Value>, Amf0Error> {
    todo!()
}

/// Append the AMF0 encoding of `value` to `out`. Strings longer than 65535 bytes are written
/// as long strings.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    todo!()
}

/// Encode a sequence of values into one buffer.
pub fn encode_all(values: &[Amf0Value]) -> Bytes {
    todo!()
}
