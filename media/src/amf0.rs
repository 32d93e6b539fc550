//! AMF0 (Action Message Format 0) values: decode and encode, complete per the AMF0 spec.
//!
//! AMF3 values are not decoded: an AMF0 `avmplus-object` marker (0x11) switches to AMF3 for the
//! rest of the buffer, which is kept untouched as [`Amf0Value::Avmplus`] so data messages pass
//! through unchanged.

use bytes::{BufMut, Bytes, BytesMut};

/// Limits applied while decoding untrusted AMF0.
///
/// `max_depth` and `max_items` bound each container; `max_values` and `max_bytes` bound the
/// whole decode (one [`decode`] call, or one message with [`decode_all`]), so that wide or
/// nested bombs cannot multiply: a 1-byte `null` becomes a whole [`Amf0Value`] in memory, so
/// without a total a 4 MiB message of nested arrays of nulls would cost hundreds of MiB.
#[derive(Debug, Clone, Copy)]
pub struct Amf0Limits {
    /// Maximum nesting of objects/arrays.
    pub max_depth: usize,
    /// Maximum number of properties/elements in any one object or array.
    pub max_items: usize,
    /// Maximum number of values (at any depth) in one decode.
    pub max_values: usize,
    /// Maximum bytes one decode may allocate: every value's in-memory size, property keys and
    /// string contents (an estimate that ignores allocator slack).
    pub max_bytes: usize,
}

impl Default for Amf0Limits {
    fn default() -> Self {
        Amf0Limits { max_depth: 32, max_items: 4096, max_values: 65_536, max_bytes: 8 << 20 }
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
    Date {
        millis: f64,
        time_zone: i16,
    },
    LongString(String),
    Unsupported,
    XmlDocument(String),
    TypedObject {
        class_name: String,
        properties: Vec<(String, Amf0Value)>,
    },
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
    #[error("AMF0: more than {0} values in one message")]
    TooManyValues(usize),
    #[error("AMF0: decoding would allocate more than {0} bytes")]
    TooLarge(usize),
}

impl Amf0Value {
    /// The string inside `String` or `LongString`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    /// The number inside `Number`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Property `key` of an `Object`, `EcmaArray` or `TypedObject` (the first one, if the key
    /// appears more than once).
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        let props = match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => p,
            Amf0Value::TypedObject { properties, .. } => properties,
            _ => return None,
        };
        props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// AMF0 type markers.
pub mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    /// Reserved, never valid on the wire.
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    /// Reserved, never valid on the wire.
    pub const RECORDSET: u8 = 0x0E;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

/// Decode one value from the front of `buf`, advancing it past the value.
///
/// On error `buf` is left unchanged. Strings must be valid UTF-8 (no lossy conversion):
/// invalid bytes give [`Amf0Error::InvalidUtf8`]. An avmplus marker consumes the whole rest of
/// `buf`.
pub fn decode(buf: &mut &[u8], limits: &Amf0Limits) -> Result<Amf0Value, Amf0Error> {
    let mut r = Reader::new(buf, limits);
    let value = r.value(0)?;
    *buf = r.buf;
    Ok(value)
}

/// Decode every value in `buf` (e.g. a command or data message body), all within one budget
/// of [`Amf0Limits::max_values`] and [`Amf0Limits::max_bytes`].
pub fn decode_all(buf: &[u8], limits: &Amf0Limits) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut r = Reader::new(buf, limits);
    let mut values = Vec::new();
    while !r.buf.is_empty() {
        if values.len() >= limits.max_items {
            return Err(Amf0Error::TooManyItems(limits.max_items));
        }
        values.push(r.value(0)?);
    }
    Ok(values)
}

/// In-memory size charged per value and per property (key excluded).
const VALUE_COST: usize = size_of::<Amf0Value>();
const PROPERTY_COST: usize = size_of::<(String, Amf0Value)>();

/// A cursor over untrusted input; every read is bounds-checked, and what the decode has built
/// so far is counted against the limits.
struct Reader<'a, 'l> {
    buf: &'a [u8],
    limits: &'l Amf0Limits,
    values: usize,
    bytes: usize,
}

impl<'a, 'l> Reader<'a, 'l> {
    fn new(buf: &'a [u8], limits: &'l Amf0Limits) -> Self {
        Reader { buf, limits, values: 0, bytes: 0 }
    }

    /// Count `bytes` more of allocation against the budget.
    fn charge(&mut self, bytes: usize) -> Result<(), Amf0Error> {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.limits.max_bytes {
            return Err(Amf0Error::TooLarge(self.limits.max_bytes));
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        if self.buf.len() < n {
            return Err(Amf0Error::Short);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Amf0Error> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    fn utf8(&mut self, len: usize) -> Result<String, Amf0Error> {
        let bytes = self.take(len)?;
        self.charge(len)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| Amf0Error::InvalidUtf8)
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u16()? as usize;
        self.utf8(len)
    }

    fn long_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u32()? as usize;
        self.utf8(len)
    }

    /// Check that a complex value at `depth` (0 = top level) may be entered.
    fn enter(&self, depth: usize) -> Result<usize, Amf0Error> {
        let inner = depth.saturating_add(1);
        if inner > self.limits.max_depth {
            return Err(Amf0Error::TooDeep(self.limits.max_depth));
        }
        Ok(inner)
    }

    /// Properties up to and including the `00 00 09` end marker.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        let inner = self.enter(depth)?;
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.buf.first() == Some(&marker::OBJECT_END) {
                self.buf = &self.buf[1..];
                return Ok(props);
            }
            if props.len() >= self.limits.max_items {
                return Err(Amf0Error::TooManyItems(self.limits.max_items));
            }
            // The value's own size is charged by `value`; the pair adds the key's String.
            self.charge(PROPERTY_COST - VALUE_COST)?;
            let value = self.value(inner)?;
            props.push((key, value));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(Amf0Error::TooManyValues(self.limits.max_values));
        }
        self.charge(VALUE_COST)?;
        let m = self.u8()?;
        Ok(match m {
            marker::NUMBER => Amf0Value::Number(self.f64()?),
            marker::BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            marker::STRING => Amf0Value::String(self.short_string()?),
            marker::OBJECT => Amf0Value::Object(self.properties(depth)?),
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            marker::REFERENCE => Amf0Value::Reference(self.u16()?),
            marker::ECMA_ARRAY => {
                // The count is only a hint (often 0 or wrong); the end marker terminates.
                let _hint = self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth)?)
            }
            marker::OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd),
            marker::STRICT_ARRAY => {
                let count = self.u32()? as usize;
                if count > self.limits.max_items {
                    return Err(Amf0Error::TooManyItems(self.limits.max_items));
                }
                let inner = self.enter(depth)?;
                // Every element takes at least one byte: never reserve more than remains.
                let mut items = Vec::with_capacity(count.min(self.buf.len()));
                for _ in 0..count {
                    items.push(self.value(inner)?);
                }
                Amf0Value::StrictArray(items)
            }
            marker::DATE => {
                let millis = self.f64()?;
                let time_zone = i16::from_be_bytes(self.array()?);
                Amf0Value::Date { millis, time_zone }
            }
            marker::LONG_STRING => Amf0Value::LongString(self.long_string()?),
            marker::UNSUPPORTED => Amf0Value::Unsupported,
            marker::XML_DOCUMENT => Amf0Value::XmlDocument(self.long_string()?),
            marker::TYPED_OBJECT => {
                let class_name = self.short_string()?;
                let properties = self.properties(depth)?;
                Amf0Value::TypedObject { class_name, properties }
            }
            marker::AVMPLUS => {
                let rest = self.take(self.buf.len())?;
                self.charge(rest.len())?;
                Amf0Value::Avmplus(Bytes::copy_from_slice(rest))
            }
            other => return Err(Amf0Error::UnknownMarker(other)),
        })
    }
}

/// Append the AMF0 encoding of `value` to `out`. Strings longer than 65535 bytes are written
/// as long strings.
///
/// Property names longer than 65535 bytes cannot be represented in AMF0; they are truncated
/// at the last character boundary that fits. Long strings and XML documents longer than
/// `u32::MAX` bytes are likewise truncated.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) if u16::try_from(s.len()).is_ok() => {
            out.put_u8(marker::STRING);
            put_short_string(s, out);
        }
        Amf0Value::String(s) | Amf0Value::LongString(s) => {
            out.put_u8(marker::LONG_STRING);
            put_long_string(s, out);
        }
        Amf0Value::Object(props) => {
            out.put_u8(marker::OBJECT);
            put_properties(props, out);
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::Reference(idx) => {
            out.put_u8(marker::REFERENCE);
            out.put_u16(*idx);
        }
        Amf0Value::EcmaArray(props) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            put_properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            let items = &items[..items.len().min(u32::MAX as usize)];
            out.put_u32(items.len() as u32);
            for item in items {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, time_zone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*time_zone);
        }
        Amf0Value::Unsupported => out.put_u8(marker::UNSUPPORTED),
        Amf0Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            put_long_string(s, out);
        }
        Amf0Value::TypedObject { class_name, properties } => {
            out.put_u8(marker::TYPED_OBJECT);
            put_short_string(class_name, out);
            put_properties(properties, out);
        }
        Amf0Value::Avmplus(rest) => {
            out.put_u8(marker::AVMPLUS);
            out.extend_from_slice(rest);
        }
    }
}

/// Encode a sequence of values into one buffer.
pub fn encode_all(values: &[Amf0Value]) -> Bytes {
    let mut out = BytesMut::new();
    for value in values {
        encode(value, &mut out);
    }
    out.freeze()
}

/// The longest prefix of `s` no longer than `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_short_string(s: &str, out: &mut BytesMut) {
    let s = truncate_utf8(s, u16::MAX as usize);
    out.put_u16(s.len() as u16);
    out.extend_from_slice(s.as_bytes());
}

fn put_long_string(s: &str, out: &mut BytesMut) {
    let s = truncate_utf8(s, u32::MAX as usize);
    out.put_u32(s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

fn put_properties(props: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in props {
        put_short_string(key, out);
        encode(value, out);
    }
    out.extend_from_slice(&[0x00, 0x00, marker::OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Amf0Limits {
        Amf0Limits::default()
    }

    fn roundtrip(v: Amf0Value) {
        let bytes = encode_all(std::slice::from_ref(&v));
        assert_eq!(decode_all(&bytes, &lim()).unwrap(), vec![v]);
    }

    #[test]
    fn number_bytes() {
        let bytes = encode_all(&[Amf0Value::Number(1.0)]);
        assert_eq!(&bytes[..], &[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
        roundtrip(Amf0Value::Number(-12.5));
    }

    #[test]
    fn connect_command_bytes() {
        // "connect", 1.0, {app: "live"}
        let wire: &[u8] = &[
            0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', //
            0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, //
            0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e', //
            0x00, 0x00, 0x09,
        ];
        let values = decode_all(wire, &lim()).unwrap();
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_f64(), Some(1.0));
        assert_eq!(values[2].get("app").and_then(Amf0Value::as_str), Some("live"));
        assert_eq!(values[2].get("nope"), None);
        assert_eq!(&encode_all(&values)[..], wire);
    }

    #[test]
    fn all_simple_markers() {
        roundtrip(Amf0Value::Boolean(true));
        roundtrip(Amf0Value::Boolean(false));
        roundtrip(Amf0Value::Null);
        roundtrip(Amf0Value::Undefined);
        roundtrip(Amf0Value::Unsupported);
        roundtrip(Amf0Value::Reference(7));
        roundtrip(Amf0Value::Date { millis: 1.7e12, time_zone: -60 });
        roundtrip(Amf0Value::LongString("short but long".into()));
        roundtrip(Amf0Value::XmlDocument("<a/>".into()));
        roundtrip(Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Number(2.0)]));
        roundtrip(Amf0Value::EcmaArray(vec![("duration".into(), Amf0Value::Number(0.0))]));
        roundtrip(Amf0Value::TypedObject {
            class_name: "Foo".into(),
            properties: vec![("x".into(), Amf0Value::Boolean(true))],
        });
        roundtrip(Amf0Value::Object(vec![("".into(), Amf0Value::Null)]));
    }

    #[test]
    fn reserved_markers_rejected() {
        assert_eq!(decode_all(&[0x04], &lim()), Err(Amf0Error::UnknownMarker(0x04)));
        assert_eq!(decode_all(&[0x0E], &lim()), Err(Amf0Error::UnknownMarker(0x0E)));
        assert_eq!(decode_all(&[0x12], &lim()), Err(Amf0Error::UnknownMarker(0x12)));
        assert_eq!(decode_all(&[0x09], &lim()), Err(Amf0Error::UnexpectedObjectEnd));
    }

    #[test]
    fn avmplus_takes_rest() {
        let v = decode_all(&[0x05, 0x11, 0x0A, 0x0B, 0x01], &lim()).unwrap();
        assert_eq!(
            v,
            vec![Amf0Value::Null, Amf0Value::Avmplus(Bytes::from_static(&[0x0A, 0x0B, 0x01]))]
        );
        assert_eq!(&encode_all(&v)[..], &[0x05, 0x11, 0x0A, 0x0B, 0x01]);
    }

    #[test]
    fn ecma_count_hint_ignored() {
        // Count says 100, one property follows, then the end marker.
        let wire = [0x08, 0, 0, 0, 100, 0, 1, b'a', 0x05, 0, 0, 0x09];
        let v = decode_all(&wire, &lim()).unwrap();
        assert_eq!(v, vec![Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Null)])]);
    }

    #[test]
    fn strict_array_count_checked_before_allocation() {
        let wire = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(decode_all(&wire, &lim()), Err(Amf0Error::TooManyItems(4096)));
        let wire = [0x0A, 0, 0, 0x10, 0, 0x05];
        assert_eq!(decode_all(&wire, &lim()), Err(Amf0Error::Short));
    }

    #[test]
    fn too_many_object_properties() {
        let limits = Amf0Limits { max_depth: 4, max_items: 2, ..Amf0Limits::default() };
        let mut out = BytesMut::new();
        let props = (0..3).map(|i| (format!("k{i}"), Amf0Value::Null)).collect();
        encode(&Amf0Value::Object(props), &mut out);
        assert_eq!(decode_all(&out, &limits), Err(Amf0Error::TooManyItems(2)));
    }

    #[test]
    fn depth_limit() {
        let limits = Amf0Limits { max_depth: 3, max_items: 10, ..Amf0Limits::default() };
        let mut v = Amf0Value::Null;
        for _ in 0..3 {
            v = Amf0Value::StrictArray(vec![v]);
        }
        let ok = encode_all(std::slice::from_ref(&v));
        assert_eq!(decode_all(&ok, &limits).unwrap(), vec![v.clone()]);
        let deeper = encode_all(&[Amf0Value::Object(vec![("x".into(), v)])]);
        assert_eq!(decode_all(&deeper, &limits), Err(Amf0Error::TooDeep(3)));
    }

    #[test]
    fn invalid_utf8_and_short_input() {
        assert_eq!(decode_all(&[0x02, 0, 2, 0xC3, 0x28], &lim()), Err(Amf0Error::InvalidUtf8));
        assert_eq!(decode_all(&[0x02, 0, 5, b'a'], &lim()), Err(Amf0Error::Short));
        assert_eq!(decode_all(&[0x00, 1, 2], &lim()), Err(Amf0Error::Short));
        assert_eq!(decode_all(&[0x03, 0, 0], &lim()), Err(Amf0Error::Short));
        let mut buf: &[u8] = &[0x02, 0, 5, b'a'];
        assert!(decode(&mut buf, &lim()).is_err());
        assert_eq!(buf.len(), 4, "input left unchanged on error");
    }

    #[test]
    fn decode_advances() {
        let mut buf: &[u8] = &[0x05, 0x01, 0x01];
        assert_eq!(decode(&mut buf, &lim()).unwrap(), Amf0Value::Null);
        assert_eq!(buf, &[0x01, 0x01]);
    }

    #[test]
    fn long_strings_switch_marker() {
        let s = "x".repeat(70_000);
        let bytes = encode_all(&[Amf0Value::String(s.clone())]);
        assert_eq!(bytes[0], marker::LONG_STRING);
        assert_eq!(&bytes[1..5], &70_000u32.to_be_bytes());
        assert_eq!(decode_all(&bytes, &lim()).unwrap(), vec![Amf0Value::LongString(s.clone())]);
        let exact = "y".repeat(65_535);
        let bytes = encode_all(&[Amf0Value::String(exact)]);
        assert_eq!(bytes[0], marker::STRING);
        // Over-long property names are truncated on a character boundary.
        let key = "é".repeat(40_000);
        let bytes = encode_all(&[Amf0Value::Object(vec![(key, Amf0Value::Null)])]);
        let v = decode_all(&bytes, &lim()).unwrap();
        let Amf0Value::Object(props) = &v[0] else { panic!("not an object") };
        assert_eq!(props[0].0.len(), 65_534);
    }
}
