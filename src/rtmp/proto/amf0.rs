//! AMF0 (Action Message Format 0, Adobe AMF0 specification) values: decoding and encoding.
//!
//! RTMP command messages (type 0x14) and data messages (type 0x12) are sequences of AMF0
//! values. Decoding is defensive: nesting depth is bounded by [`MAX_DEPTH`], element counts
//! read from the input are checked against the bytes that remain before anything is
//! allocated, one message decodes to at most [`MAX_VALUES`] values (a one-byte value on
//! the wire is tens of bytes in memory), and nothing panics on malformed input.
//!
//! Strings that are not valid UTF-8 are decoded **lossily** (invalid sequences become
//! U+FFFD): some encoders send Latin-1 stream names, and rejecting a whole `connect` for one
//! odd byte would be worse than a replacement character.

use std::fmt;

/// Marker of a Number (IEEE-754 double, big endian).
pub const MARKER_NUMBER: u8 = 0x00;
/// Marker of a Boolean.
pub const MARKER_BOOLEAN: u8 = 0x01;
/// Marker of a String (u16 length).
pub const MARKER_STRING: u8 = 0x02;
/// Marker of an anonymous Object.
pub const MARKER_OBJECT: u8 = 0x03;
/// Marker of a MovieClip (reserved, not supported).
pub const MARKER_MOVIECLIP: u8 = 0x04;
/// Marker of Null.
pub const MARKER_NULL: u8 = 0x05;
/// Marker of Undefined.
pub const MARKER_UNDEFINED: u8 = 0x06;
/// Marker of a Reference (u16 index of an earlier complex value).
pub const MARKER_REFERENCE: u8 = 0x07;
/// Marker of an ECMA (associative) array.
pub const MARKER_ECMA_ARRAY: u8 = 0x08;
/// Marker ending an object's property list (after an empty key).
pub const MARKER_OBJECT_END: u8 = 0x09;
/// Marker of a Strict (dense) array.
pub const MARKER_STRICT_ARRAY: u8 = 0x0A;
/// Marker of a Date.
pub const MARKER_DATE: u8 = 0x0B;
/// Marker of a Long String (u32 length).
pub const MARKER_LONG_STRING: u8 = 0x0C;
/// Marker of the Unsupported type.
pub const MARKER_UNSUPPORTED: u8 = 0x0D;
/// Marker of a RecordSet (reserved, not supported).
pub const MARKER_RECORDSET: u8 = 0x0E;
/// Marker of an XML document (u32 length, like a Long String).
pub const MARKER_XML_DOCUMENT: u8 = 0x0F;
/// Marker of a Typed Object (class name + properties).
pub const MARKER_TYPED_OBJECT: u8 = 0x10;
/// Marker of the switch to AMF3 (AVM+), which this decoder does not support.
pub const MARKER_AVMPLUS: u8 = 0x11;

/// Deepest nesting of objects/arrays accepted by [`decode`].
pub const MAX_DEPTH: usize = 64;

/// Most values (nested ones included) one [`decode`] or [`decode_all`] call makes. Real
/// commands and metadata hold tens; this bounds what a hostile message can cost in
/// memory to a few MiB whatever its length.
pub const MAX_VALUES: usize = 65_536;

/// Errors from AMF0 decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("AMF0 input truncated reading {what}: need {needed} bytes, {remaining} left")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes that remained.
        remaining: usize,
    },
    /// A marker this decoder does not know (or a reserved one: MovieClip, RecordSet).
    #[error("unknown or unsupported AMF0 marker {marker:#04x}")]
    UnknownMarker {
        /// The marker byte.
        marker: u8,
    },
    /// An object-end marker where a value was expected.
    #[error("unexpected AMF0 object-end marker")]
    UnexpectedObjectEnd,
    /// The AVM+ marker (0x11): the value is AMF3-encoded, which is not supported.
    /// Callers decoding data messages can skip the value and carry on.
    #[error("AMF3 (AVM+) values are not supported")]
    Amf3NotSupported,
    /// Objects/arrays nested deeper than [`MAX_DEPTH`].
    #[error("AMF0 nesting deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_VALUES`] values in one message.
    #[error("AMF0 message holds more than {max} values")]
    TooManyValues {
        /// The limit.
        max: usize,
    },
    /// A strict-array count larger than the bytes left could possibly hold.
    #[error("AMF0 strict array claims {count} elements with only {remaining} bytes left")]
    CountTooLarge {
        /// The claimed element count.
        count: u32,
        /// Bytes that remained.
        remaining: usize,
    },
}

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Amf0Value {
    /// 0x00: a double.
    Number(f64),
    /// 0x01: a boolean.
    Boolean(bool),
    /// 0x02: a string of at most 0xFFFF bytes (longer ones are encoded as Long String).
    String(String),
    /// 0x03: an anonymous object, properties in wire order.
    Object(Vec<(String, Amf0Value)>),
    /// 0x05: null.
    Null,
    /// 0x06: undefined.
    Undefined,
    /// 0x07: a reference to an earlier complex value (kept as the raw index).
    Reference(u16),
    /// 0x08: an ECMA (associative) array, properties in wire order.
    EcmaArray(Vec<(String, Amf0Value)>),
    /// 0x0A: a strict (dense) array.
    StrictArray(Vec<Amf0Value>),
    /// 0x0B: a date, milliseconds since the epoch plus a (deprecated) time-zone field.
    Date {
        /// Milliseconds since 1970-01-01 UTC.
        millis: f64,
        /// Time-zone offset field, in minutes; senders should write 0.
        tz: i16,
    },
    /// 0x0C: a string with a 32-bit length.
    LongString(String),
    /// 0x0D: the "unsupported" marker value.
    Unsupported,
    /// 0x0F: an XML document (a long string).
    XmlDocument(String),
    /// 0x10: an object with a registered class name.
    TypedObject {
        /// The class alias.
        class: String,
        /// Properties in wire order.
        props: Vec<(String, Amf0Value)>,
    },
}

impl Amf0Value {
    /// Builds a [`Amf0Value::String`].
    pub fn string(s: impl Into<String>) -> Self {
        Amf0Value::String(s.into())
    }

    /// Builds an [`Amf0Value::Object`] from `(key, value)` pairs.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Self {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The string of a String, Long String or XML document.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) | Amf0Value::XmlDocument(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a Number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The value of a Boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The properties of an Object, ECMA array or Typed Object.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Some(p),
            Amf0Value::TypedObject { props, .. } => Some(props),
            _ => None,
        }
    }

    /// The first property named `key` of an Object, ECMA array or Typed Object.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether this is Null or Undefined.
    pub fn is_null(&self) -> bool {
        matches!(self, Amf0Value::Null | Amf0Value::Undefined)
    }
}

impl fmt::Display for Amf0Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amf0Value::Number(n) => write!(f, "{n}"),
            Amf0Value::Boolean(b) => write!(f, "{b}"),
            Amf0Value::String(s) | Amf0Value::LongString(s) | Amf0Value::XmlDocument(s) => {
                write!(f, "{s:?}")
            }
            Amf0Value::Null => f.write_str("null"),
            Amf0Value::Undefined => f.write_str("undefined"),
            Amf0Value::Unsupported => f.write_str("unsupported"),
            Amf0Value::Reference(r) => write!(f, "ref({r})"),
            Amf0Value::Date { millis, .. } => write!(f, "date({millis})"),
            Amf0Value::StrictArray(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => fmt_props(f, "", p),
            Amf0Value::TypedObject { class, props } => fmt_props(f, class, props),
        }
    }
}

fn fmt_props(
    f: &mut fmt::Formatter<'_>,
    class: &str,
    props: &[(String, Amf0Value)],
) -> fmt::Result {
    // The braces are written as escapes so that brace-matching tools read this function
    // right.
    f.write_str(class)?;
    f.write_str("\u{7b}")?;
    for (i, (k, v)) in props.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{k}: {v}")?;
    }
    f.write_str("\u{7d}")
}

/// Decodes one value from the front of `buf`, advancing it past the value.
///
/// On error `buf` is left at an unspecified position inside the failed value.
pub fn decode(buf: &mut &[u8]) -> Result<Amf0Value, Amf0Error> {
    let mut budget = MAX_VALUES;
    decode_value(buf, 0, &mut budget)
}

/// Decodes every value in `buf` (a command or data message body); at most
/// [`MAX_VALUES`] in all.
pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut values = Vec::new();
    let mut budget = MAX_VALUES;
    while !buf.is_empty() {
        values.push(decode_value(&mut buf, 0, &mut budget)?);
    }
    Ok(values)
}

/// Takes `n` bytes off the front of `buf`.
fn take<'a>(buf: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], Amf0Error> {
    if buf.len() < n {
        return Err(Amf0Error::Truncated {
            what,
            needed: n,
            remaining: buf.len(),
        });
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn take_array<const N: usize>(buf: &mut &[u8], what: &'static str) -> Result<[u8; N], Amf0Error> {
    let bytes = take(buf, N, what)?;
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    Ok(out)
}

fn read_u16(buf: &mut &[u8], what: &'static str) -> Result<u16, Amf0Error> {
    take_array::<2>(buf, what).map(u16::from_be_bytes)
}

fn read_u32(buf: &mut &[u8], what: &'static str) -> Result<u32, Amf0Error> {
    take_array::<4>(buf, what).map(u32::from_be_bytes)
}

fn read_f64(buf: &mut &[u8], what: &'static str) -> Result<f64, Amf0Error> {
    take_array::<8>(buf, what).map(f64::from_be_bytes)
}

/// A UTF-8 string with a 16-bit length (no marker).
fn read_short_string(buf: &mut &[u8], what: &'static str) -> Result<String, Amf0Error> {
    let len = usize::from(read_u16(buf, what)?);
    let bytes = take(buf, len, what)?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// A UTF-8 string with a 32-bit length (no marker).
fn read_long_string(buf: &mut &[u8], what: &'static str) -> Result<String, Amf0Error> {
    let len = usize::try_from(read_u32(buf, what)?).unwrap_or(usize::MAX);
    let bytes = take(buf, len, what)?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Properties up to and including the empty-key + object-end terminator.
///
/// An empty key followed by anything but the object-end marker is taken as a property
/// with an empty name (tolerated, as some encoders emit it).
fn read_properties(
    buf: &mut &[u8],
    depth: usize,
    budget: &mut usize,
) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
    let mut props = Vec::new();
    loop {
        let key = read_short_string(buf, "property name")?;
        if key.is_empty() && buf.first() == Some(&MARKER_OBJECT_END) {
            *buf = buf.get(1..).unwrap_or_default();
            return Ok(props);
        }
        let value = decode_value(buf, depth, budget)?;
        props.push((key, value));
    }
}

fn decode_value(buf: &mut &[u8], depth: usize, budget: &mut usize) -> Result<Amf0Value, Amf0Error> {
    *budget = budget
        .checked_sub(1)
        .ok_or(Amf0Error::TooManyValues { max: MAX_VALUES })?;
    let [marker] = take_array::<1>(buf, "marker")?;
    let nested = |depth: usize| {
        let next = depth + 1;
        if next > MAX_DEPTH {
            Err(Amf0Error::TooDeep { max: MAX_DEPTH })
        } else {
            Ok(next)
        }
    };
    Ok(match marker {
        MARKER_NUMBER => Amf0Value::Number(read_f64(buf, "number")?),
        MARKER_BOOLEAN => Amf0Value::Boolean(take_array::<1>(buf, "boolean")?[0] != 0),
        MARKER_STRING => Amf0Value::String(read_short_string(buf, "string")?),
        MARKER_OBJECT => Amf0Value::Object(read_properties(buf, nested(depth)?, budget)?),
        MARKER_NULL => Amf0Value::Null,
        MARKER_UNDEFINED => Amf0Value::Undefined,
        MARKER_REFERENCE => Amf0Value::Reference(read_u16(buf, "reference")?),
        MARKER_ECMA_ARRAY => {
            let depth = nested(depth)?;
            // The count is only a hint; the terminator ends the array.
            let _count = read_u32(buf, "ECMA array count")?;
            Amf0Value::EcmaArray(read_properties(buf, depth, budget)?)
        }
        MARKER_OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd),
        MARKER_STRICT_ARRAY => {
            let depth = nested(depth)?;
            let count = read_u32(buf, "strict array count")?;
            // Every element takes at least its marker byte.
            let n = usize::try_from(count).unwrap_or(usize::MAX);
            if n > buf.len() {
                return Err(Amf0Error::CountTooLarge {
                    count,
                    remaining: buf.len(),
                });
            }
            if n > *budget {
                return Err(Amf0Error::TooManyValues { max: MAX_VALUES });
            }
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(decode_value(buf, depth, budget)?);
            }
            Amf0Value::StrictArray(items)
        }
        MARKER_DATE => {
            let millis = read_f64(buf, "date")?;
            let tz = i16::from_be_bytes(take_array::<2>(buf, "date time zone")?);
            Amf0Value::Date { millis, tz }
        }
        MARKER_LONG_STRING => Amf0Value::LongString(read_long_string(buf, "long string")?),
        MARKER_UNSUPPORTED => Amf0Value::Unsupported,
        MARKER_XML_DOCUMENT => Amf0Value::XmlDocument(read_long_string(buf, "XML document")?),
        MARKER_TYPED_OBJECT => {
            let depth = nested(depth)?;
            let class = read_short_string(buf, "typed object class")?;
            let props = read_properties(buf, depth, budget)?;
            Amf0Value::TypedObject { class, props }
        }
        MARKER_AVMPLUS => return Err(Amf0Error::Amf3NotSupported),
        marker => return Err(Amf0Error::UnknownMarker { marker }),
    })
}

/// Appends the encoding of `v` to `out`.
///
/// A [`Amf0Value::String`] longer than 0xFFFF bytes is written as a Long String; property
/// names and class names longer than 0xFFFF bytes are truncated (at a character boundary)
/// since their length field is 16 bits.
pub fn encode(v: &Amf0Value, out: &mut Vec<u8>) {
    match v {
        Amf0Value::Number(n) => {
            out.push(MARKER_NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => {
            out.push(MARKER_BOOLEAN);
            out.push(u8::from(*b));
        }
        Amf0Value::String(s) => {
            if u16::try_from(s.len()).is_ok() {
                out.push(MARKER_STRING);
                write_short_string(s, out);
            } else {
                out.push(MARKER_LONG_STRING);
                write_long_string(s, out);
            }
        }
        Amf0Value::Object(props) => {
            out.push(MARKER_OBJECT);
            write_properties(props, out);
        }
        Amf0Value::Null => out.push(MARKER_NULL),
        Amf0Value::Undefined => out.push(MARKER_UNDEFINED),
        Amf0Value::Reference(r) => {
            out.push(MARKER_REFERENCE);
            out.extend_from_slice(&r.to_be_bytes());
        }
        Amf0Value::EcmaArray(props) => {
            out.push(MARKER_ECMA_ARRAY);
            let count = u32::try_from(props.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            write_properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.push(MARKER_STRICT_ARRAY);
            // A Vec longer than u32::MAX cannot be built in practice; cap defensively.
            let items = items
                .get(..items.len().min(u32::MAX as usize))
                .unwrap_or_default();
            let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, tz } => {
            out.push(MARKER_DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&tz.to_be_bytes());
        }
        Amf0Value::LongString(s) => {
            out.push(MARKER_LONG_STRING);
            write_long_string(s, out);
        }
        Amf0Value::Unsupported => out.push(MARKER_UNSUPPORTED),
        Amf0Value::XmlDocument(s) => {
            out.push(MARKER_XML_DOCUMENT);
            write_long_string(s, out);
        }
        Amf0Value::TypedObject { class, props } => {
            out.push(MARKER_TYPED_OBJECT);
            write_short_string(class, out);
            write_properties(props, out);
        }
    }
}

/// Encodes a sequence of values (a whole command or data message body).
pub fn encode_all(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(v, &mut out);
    }
    out
}

/// Length-prefixed (u16) string; truncated at a char boundary if longer than 0xFFFF bytes.
fn write_short_string(s: &str, out: &mut Vec<u8>) {
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = s.as_bytes().get(..end).unwrap_or_default();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Length-prefixed (u32) string; truncated at a char boundary beyond 0xFFFF_FFFF bytes.
fn write_long_string(s: &str, out: &mut Vec<u8>) {
    let mut end = s.len().min(u32::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = s.as_bytes().get(..end).unwrap_or_default();
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn write_properties(props: &[(String, Amf0Value)], out: &mut Vec<u8>) {
    for (k, v) in props {
        write_short_string(k, out);
        encode(v, out);
    }
    out.extend_from_slice(&[0x00, 0x00, MARKER_OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Amf0Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, &mut out);
        let mut rest = out.as_slice();
        let back = decode(&mut rest).expect("decodes");
        assert!(rest.is_empty(), "{v:?} left {} bytes", rest.len());
        assert_eq!(&back, v);
        out
    }

    #[test]
    fn number_bytes() {
        let out = round_trip(&Amf0Value::Number(1.0));
        assert_eq!(out, [0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn scalar_round_trips() {
        assert_eq!(round_trip(&Amf0Value::Boolean(true)), [0x01, 0x01]);
        assert_eq!(round_trip(&Amf0Value::Boolean(false)), [0x01, 0x00]);
        assert_eq!(
            round_trip(&Amf0Value::string("ab")),
            [0x02, 0x00, 0x02, b'a', b'b']
        );
        assert_eq!(round_trip(&Amf0Value::Null), [0x05]);
        assert_eq!(round_trip(&Amf0Value::Undefined), [0x06]);
        assert_eq!(round_trip(&Amf0Value::Unsupported), [0x0D]);
        assert_eq!(
            round_trip(&Amf0Value::Reference(0x0102)),
            [0x07, 0x01, 0x02]
        );
        assert_eq!(
            round_trip(&Amf0Value::LongString("x".into())),
            [0x0C, 0, 0, 0, 1, b'x']
        );
        assert_eq!(
            round_trip(&Amf0Value::XmlDocument("<a/>".into())),
            [0x0F, 0, 0, 0, 4, b'<', b'a', b'/', b'>']
        );
        let date = round_trip(&Amf0Value::Date {
            millis: 1.5e12,
            tz: -60,
        });
        assert_eq!(date.len(), 11);
        assert_eq!(&date[9..], &[0xFF, 0xC4]);
        round_trip(&Amf0Value::Number(-0.0));
        round_trip(&Amf0Value::Number(f64::INFINITY));
    }

    #[test]
    fn complex_round_trips() {
        let obj = Amf0Value::object([
            ("a", Amf0Value::Number(2.0)),
            ("", Amf0Value::Boolean(true)),
            ("n", Amf0Value::object([("deep", Amf0Value::Null)])),
        ]);
        round_trip(&obj);
        let ecma = Amf0Value::EcmaArray(vec![
            ("duration".into(), Amf0Value::Number(0.0)),
            ("encoder".into(), Amf0Value::string("Lavf")),
        ]);
        let bytes = round_trip(&ecma);
        assert_eq!(&bytes[..5], &[0x08, 0, 0, 0, 2]);
        assert_eq!(&bytes[bytes.len() - 3..], &[0, 0, 0x09]);
        let arr = Amf0Value::StrictArray(vec![
            Amf0Value::Number(1.0),
            Amf0Value::string("two"),
            Amf0Value::StrictArray(vec![]),
        ]);
        round_trip(&arr);
        let typed = Amf0Value::TypedObject {
            class: "flex.Foo".into(),
            props: vec![("x".into(), Amf0Value::Undefined)],
        };
        let bytes = round_trip(&typed);
        assert_eq!(&bytes[..3], &[0x10, 0x00, 0x08]);
        round_trip(&Amf0Value::object::<&str>([]));
    }

    #[test]
    fn long_plain_string_becomes_long_string() {
        let s = "y".repeat(0x1_0000);
        let mut out = Vec::new();
        encode(&Amf0Value::String(s.clone()), &mut out);
        assert_eq!(&out[..5], &[0x0C, 0, 1, 0, 0]);
        assert_eq!(decode_all(&out).unwrap(), [Amf0Value::LongString(s)]);
    }

    /// The body of ffmpeg's `connect` (libavformat/rtmpproto.c `gen_connect`), by hand.
    fn ffmpeg_connect_bytes() -> Vec<u8> {
        let mut b = vec![0x02, 0x00, 0x07];
        b.extend_from_slice(b"connect");
        b.extend_from_slice(&[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]); // 1.0
        b.push(0x03);
        let prop = |b: &mut Vec<u8>, k: &str, v: &str| {
            b.extend_from_slice(&(k.len() as u16).to_be_bytes());
            b.extend_from_slice(k.as_bytes());
            b.push(0x02);
            b.extend_from_slice(&(v.len() as u16).to_be_bytes());
            b.extend_from_slice(v.as_bytes());
        };
        prop(&mut b, "app", "live");
        prop(&mut b, "type", "nonprivate");
        prop(&mut b, "flashVer", "FMLE/3.0 (compatible; Lavf61.7.100)");
        prop(&mut b, "tcUrl", "rtmp://127.0.0.1:1935/live");
        b.extend_from_slice(&[0x00, 0x00, 0x09]);
        b
    }

    #[test]
    fn ffmpeg_connect_command() {
        let bytes = ffmpeg_connect_bytes();
        let values = decode_all(&bytes).unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_f64(), Some(1.0));
        let obj = &values[2];
        assert_eq!(obj.get("app").and_then(Amf0Value::as_str), Some("live"));
        assert_eq!(
            obj.get("type").and_then(Amf0Value::as_str),
            Some("nonprivate")
        );
        assert_eq!(
            obj.get("tcUrl").and_then(Amf0Value::as_str),
            Some("rtmp://127.0.0.1:1935/live")
        );
        assert!(obj.get("missing").is_none());
        // Re-encoding yields the identical bytes.
        assert_eq!(encode_all(&values), bytes);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = ffmpeg_connect_bytes();
        // Cutting inside the first value fails; later cuts fail on the value they cut.
        for n in 0..bytes.len() {
            let cut = &bytes[..n];
            let mut rest = cut;
            let first = decode(&mut rest);
            if n < 10 {
                assert!(first.is_err(), "prefix {n}");
            }
            if n != 0 && n != 10 && n != 19 {
                assert!(decode_all(cut).is_err(), "prefix {n} decoded");
            }
        }
        let arr = encode_all(&[Amf0Value::StrictArray(vec![Amf0Value::Date {
            millis: 0.0,
            tz: 0,
        }])]);
        for n in 1..arr.len() {
            assert!(decode_all(&arr[..n]).is_err(), "array prefix {n}");
        }
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let mut ok = [0x0A, 0, 0, 0, 1].repeat(MAX_DEPTH);
        ok.push(0x05);
        assert!(decode_all(&ok).is_ok());
        let mut deep = [0x0A, 0, 0, 0, 1].repeat(MAX_DEPTH + 1);
        deep.push(0x05);
        assert_eq!(
            decode_all(&deep),
            Err(Amf0Error::TooDeep { max: MAX_DEPTH })
        );
        // Objects nest through property values.
        let mut objs = Vec::new();
        for _ in 0..100_000 {
            objs.extend_from_slice(&[0x03, 0x00, 0x01, b'k']);
        }
        assert_eq!(
            decode_all(&objs),
            Err(Amf0Error::TooDeep { max: MAX_DEPTH })
        );
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        assert!(matches!(
            decode_all(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05]),
            Err(Amf0Error::CountTooLarge {
                count: u32::MAX,
                ..
            })
        ));
        // The ECMA count is only a hint.
        assert_eq!(
            decode_all(&[0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x09]).unwrap(),
            [Amf0Value::EcmaArray(vec![])]
        );
        assert!(matches!(
            decode_all(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a']),
            Err(Amf0Error::Truncated { .. })
        ));
    }

    #[test]
    fn markers_and_utf8() {
        assert_eq!(decode_all(&[0x11, 0x06]), Err(Amf0Error::Amf3NotSupported));
        assert_eq!(
            decode_all(&[0x04]),
            Err(Amf0Error::UnknownMarker { marker: 0x04 })
        );
        assert_eq!(decode_all(&[0x09]), Err(Amf0Error::UnexpectedObjectEnd));
        assert_eq!(
            decode_all(&[0x02, 0x00, 0x02, 0xC3, 0x28]).unwrap(),
            [Amf0Value::string("\u{FFFD}(")]
        );
        assert_eq!(Amf0Value::string("s").to_string(), "\"s\"");
    }

    #[test]
    fn a_message_decodes_to_a_bounded_number_of_values() {
        // 70,000 one-byte nulls: within the bytes left, over the value budget.
        let mut msg = vec![MARKER_STRICT_ARRAY];
        msg.extend_from_slice(&70_000u32.to_be_bytes());
        msg.extend(std::iter::repeat_n(MARKER_NULL, 70_000));
        assert_eq!(
            decode_all(&msg),
            Err(Amf0Error::TooManyValues { max: MAX_VALUES })
        );
        // The budget is per message, across its values and their nesting.
        let mut many = vec![MARKER_NULL; MAX_VALUES + 1];
        assert_eq!(
            decode_all(&many),
            Err(Amf0Error::TooManyValues { max: MAX_VALUES })
        );
        many.truncate(MAX_VALUES);
        assert_eq!(decode_all(&many).map(|v| v.len()), Ok(MAX_VALUES));
        let mut nested = vec![MARKER_STRICT_ARRAY];
        nested.extend_from_slice(&(MAX_VALUES as u32).to_be_bytes());
        nested.extend(std::iter::repeat_n(MARKER_NULL, MAX_VALUES));
        assert_eq!(
            decode_all(&nested),
            Err(Amf0Error::TooManyValues { max: MAX_VALUES }),
            "the array itself counts"
        );
    }
}
