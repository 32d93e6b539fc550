//! AMF0 command messages (type 20): parsing the commands clients send and building the replies
//! (`_result`, `_error`, `onStatus`) real clients expect.
//!
//! Layout of a command message (RTMP spec 7.1.1): command name (string), transaction id
//! (number), command object (object or null), then optional arguments. Parsing is lenient
//! where real clients differ (a missing optional argument takes its default) and strict where
//! the server cannot act without a value (the stream name of `publish`/`play`).
//!
//! The builders at the end produce complete AMF0 payloads ready for a type-20 message (or a
//! type-18 data message for [`sample_access`]).

use bytes::Bytes;

use crate::amf0::{self, Amf0Limits, Amf0Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Connect {
        transaction_id: f64,
        app: String,
        tc_url: Option<String>,
        object_encoding: f64,
    },
    CreateStream {
        transaction_id: f64,
    },
    ReleaseStream {
        transaction_id: f64,
        name: String,
    },
    FcPublish {
        transaction_id: f64,
        name: String,
    },
    FcUnpublish {
        transaction_id: f64,
        name: String,
    },
    Publish {
        transaction_id: f64,
        name: String,
        publish_type: String,
    },
    /// `start`: -2 live or recorded, -1 live only, >= 0 recorded from that time; `duration` -1 all.
    Play {
        transaction_id: f64,
        name: String,
        start: f64,
        duration: f64,
        reset: bool,
    },
    DeleteStream {
        transaction_id: f64,
        stream_id: u32,
    },
    CloseStream {
        transaction_id: f64,
    },
    GetStreamLength {
        transaction_id: f64,
        name: String,
    },
    /// `_result` answers (client side).
    Result {
        transaction_id: f64,
        values: Vec<Amf0Value>,
    },
    /// `_error` answers (client side).
    Error {
        transaction_id: f64,
        values: Vec<Amf0Value>,
    },
    OnStatus {
        level: String,
        code: String,
        description: String,
    },
    /// Anything else (`FCSubscribe`, `_checkbw`, `getStreamLength` variants, ...).
    Other {
        name: String,
        transaction_id: f64,
        args: Vec<Amf0Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Amf0(#[from] amf0::Amf0Error),
    #[error("command message has no name")]
    NoName,
    #[error("command '{0}' is missing a required argument")]
    MissingArgument(&'static str),
}

impl Command {
    /// Parse an AMF0 command message payload.
    ///
    /// For `_result` and `_error`, `values` holds everything after the transaction id (command
    /// object or null first). For `Other`, `args` likewise holds everything after the
    /// transaction id. `onStatus` is also accepted in its data-message form (no transaction id).
    pub fn parse(payload: &[u8], limits: &Amf0Limits) -> Result<Command, CommandError> {
        let mut values = amf0::decode_all(payload, limits)?;
        let name = match values.first().and_then(Amf0Value::as_str) {
            Some(name) => name.to_owned(),
            None => return Err(CommandError::NoName),
        };
        let transaction_id = values.get(1).and_then(Amf0Value::as_f64).unwrap_or(0.0);
        // Positional arguments after the command object.
        let arg = |i: usize| values.get(3 + i);
        let string_arg = |i: usize| arg(i).and_then(Amf0Value::as_str).map(str::to_owned);
        let number_arg = |i: usize| arg(i).and_then(Amf0Value::as_f64);

        let command = match name.as_str() {
            "connect" => {
                let object = values.get(2);
                let field = |key: &str| object.and_then(|o| o.get(key));
                let app = field("app")
                    .and_then(Amf0Value::as_str)
                    .ok_or(CommandError::MissingArgument("connect"))?
                    .to_owned();
                let tc_url = field("tcUrl").and_then(Amf0Value::as_str).map(str::to_owned);
                let object_encoding =
                    field("objectEncoding").and_then(Amf0Value::as_f64).unwrap_or(0.0);
                Command::Connect { transaction_id, app, tc_url, object_encoding }
            }
            "createStream" => Command::CreateStream { transaction_id },
            "releaseStream" => {
                Command::ReleaseStream { transaction_id, name: string_arg(0).unwrap_or_default() }
            }
            "FCPublish" => {
                Command::FcPublish { transaction_id, name: string_arg(0).unwrap_or_default() }
            }
            "FCUnpublish" => {
                Command::FcUnpublish { transaction_id, name: string_arg(0).unwrap_or_default() }
            }
            "publish" => {
                let name = string_arg(0).ok_or(CommandError::MissingArgument("publish"))?;
                let publish_type = string_arg(1).unwrap_or_else(|| "live".to_owned());
                Command::Publish { transaction_id, name, publish_type }
            }
            "play" => {
                let name = string_arg(0).ok_or(CommandError::MissingArgument("play"))?;
                let start = number_arg(1).unwrap_or(-2.0);
                let duration = number_arg(2).unwrap_or(-1.0);
                let reset = match arg(3) {
                    Some(Amf0Value::Boolean(b)) => *b,
                    Some(Amf0Value::Number(n)) => *n != 0.0,
                    _ => true,
                };
                Command::Play { transaction_id, name, start, duration, reset }
            }
            "deleteStream" => {
                let id = number_arg(0).ok_or(CommandError::MissingArgument("deleteStream"))?;
                Command::DeleteStream { transaction_id, stream_id: f64_to_u32(id) }
            }
            "closeStream" => Command::CloseStream { transaction_id },
            "getStreamLength" => {
                Command::GetStreamLength { transaction_id, name: string_arg(0).unwrap_or_default() }
            }
            "_result" => {
                Command::Result { transaction_id, values: values.split_off(2.min(values.len())) }
            }
            "_error" => {
                Command::Error { transaction_id, values: values.split_off(2.min(values.len())) }
            }
            "onStatus" => {
                // Command form: onStatus, 0, null, {info}; data form: onStatus, {info}.
                let info = values.iter().skip(1).find(|v| is_object(v));
                let text = |key: &str| {
                    info.and_then(|o| o.get(key))
                        .and_then(Amf0Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                Command::OnStatus {
                    level: text("level"),
                    code: text("code"),
                    description: text("description"),
                }
            }
            _ => {
                Command::Other { name, transaction_id, args: values.split_off(2.min(values.len())) }
            }
        };
        Ok(command)
    }
}

/// Whether `value` is an object-like AMF0 value (anonymous, typed or ECMA array).
fn is_object(value: &Amf0Value) -> bool {
    matches!(value, Amf0Value::Object(_) | Amf0Value::EcmaArray(_) | Amf0Value::TypedObject { .. })
}

/// Saturating conversion of a peer-supplied number (NaN and negatives become 0).
fn f64_to_u32(n: f64) -> u32 {
    // `as` saturates and maps NaN to 0: never panics.
    n as u32
}

/// The `description` (or failing that, `code`) of the first info object in `values`; used to
/// report `_error` answers.
pub fn error_description(values: &[Amf0Value]) -> String {
    let info = values.iter().find(|v| is_object(v));
    let text = |key| info.and_then(|o| o.get(key)).and_then(Amf0Value::as_str);
    text("description").or_else(|| text("code")).unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Reply builders (server side).
// ---------------------------------------------------------------------------------------------

fn s(text: &str) -> Amf0Value {
    Amf0Value::String(text.to_owned())
}

fn prop(key: &str, value: Amf0Value) -> (String, Amf0Value) {
    (key.to_owned(), value)
}

/// The info object of an `onStatus` / `_error`: `level`, `code`, `description`, then `extra`.
pub fn status_object(
    level: &str,
    code: &str,
    description: &str,
    extra: &[(&str, Amf0Value)],
) -> Amf0Value {
    let mut props =
        vec![prop("level", s(level)), prop("code", s(code)), prop("description", s(description))];
    props.extend(extra.iter().map(|(k, v)| prop(k, v.clone())));
    Amf0Value::Object(props)
}

/// `_result` answering `connect`: properties `{fmsVer, capabilities, mode}` and information
/// `{level: status, code: NetConnection.Connect.Success, description, objectEncoding}`.
pub fn connect_result(transaction_id: f64, object_encoding: f64) -> Bytes {
    let properties = Amf0Value::Object(vec![
        prop("fmsVer", s("FMS/3,0,1,123")),
        prop("capabilities", Amf0Value::Number(31.0)),
        prop("mode", Amf0Value::Number(1.0)),
    ]);
    let information = status_object(
        "status",
        "NetConnection.Connect.Success",
        "Connection succeeded.",
        &[("objectEncoding", Amf0Value::Number(object_encoding))],
    );
    amf0::encode_all(&[s("_result"), Amf0Value::Number(transaction_id), properties, information])
}

/// `_error` answering `connect`: NetConnection.Connect.Rejected with `description`.
pub fn connect_error(transaction_id: f64, description: &str) -> Bytes {
    error(
        transaction_id,
        status_object("error", "NetConnection.Connect.Rejected", description, &[]),
    )
}

/// Generic `_result`: `_result, transaction_id, null, value`.
pub fn result(transaction_id: f64, value: Amf0Value) -> Bytes {
    amf0::encode_all(&[s("_result"), Amf0Value::Number(transaction_id), Amf0Value::Null, value])
}

/// `_result` answering `createStream` with the new message stream id.
pub fn create_stream_result(transaction_id: f64, stream_id: u32) -> Bytes {
    result(transaction_id, Amf0Value::Number(f64::from(stream_id)))
}

/// `_result` answering `releaseStream` or `FCPublish` (value `undefined`, as FMS does).
pub fn empty_result(transaction_id: f64) -> Bytes {
    result(transaction_id, Amf0Value::Undefined)
}

/// Generic `_error`: `_error, transaction_id, null, info`.
pub fn error(transaction_id: f64, info: Amf0Value) -> Bytes {
    amf0::encode_all(&[s("_error"), Amf0Value::Number(transaction_id), Amf0Value::Null, info])
}

/// `onStatus, 0, null, {level, code, description, ...extra}` (sent on the stream's message
/// stream id).
pub fn on_status(level: &str, code: &str, description: &str, extra: &[(&str, Amf0Value)]) -> Bytes {
    amf0::encode_all(&[
        s("onStatus"),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        status_object(level, code, description, extra),
    ])
}

/// `onFCPublish, 0, null, {code: NetStream.Publish.Start, description: name}`.
pub fn on_fc_publish(name: &str) -> Bytes {
    let info = Amf0Value::Object(vec![
        prop("code", s("NetStream.Publish.Start")),
        prop("description", s(name)),
    ]);
    amf0::encode_all(&[s("onFCPublish"), Amf0Value::Number(0.0), Amf0Value::Null, info])
}

/// Data message (type 18) `|RtmpSampleAccess, audio, video`: lets Flash players read samples.
pub fn sample_access(audio: bool, video: bool) -> Bytes {
    amf0::encode_all(&[
        s("|RtmpSampleAccess"),
        Amf0Value::Boolean(audio),
        Amf0Value::Boolean(video),
    ])
}

// ---------------------------------------------------------------------------------------------
// Request builders (client side).
// ---------------------------------------------------------------------------------------------

/// `connect` as a publishing encoder sends it (FMLE-style command object, AMF0 encoding).
pub fn connect_request(transaction_id: f64, app: &str, tc_url: &str) -> Bytes {
    let object = Amf0Value::Object(vec![
        prop("app", s(app)),
        prop("type", s("nonprivate")),
        prop("flashVer", s("FMLE/3.0 (compatible; sluice-bench)")),
        prop("tcUrl", s(tc_url)),
        prop("fpad", Amf0Value::Boolean(false)),
        prop("capabilities", Amf0Value::Number(15.0)),
        prop("audioCodecs", Amf0Value::Number(4071.0)),
        prop("videoCodecs", Amf0Value::Number(252.0)),
        prop("videoFunction", Amf0Value::Number(1.0)),
        prop("objectEncoding", Amf0Value::Number(0.0)),
    ]);
    amf0::encode_all(&[s("connect"), Amf0Value::Number(transaction_id), object])
}

/// A command with a null command object and `args`: `name, transaction_id, null, args...`.
pub fn request(name: &str, transaction_id: f64, args: &[Amf0Value]) -> Bytes {
    let mut values = vec![s(name), Amf0Value::Number(transaction_id), Amf0Value::Null];
    values.extend_from_slice(args);
    amf0::encode_all(&values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[Amf0Value]) -> Result<Command, CommandError> {
        Command::parse(&amf0::encode_all(values), &Amf0Limits::default())
    }

    #[test]
    fn play_defaults_and_numeric_reset() {
        let cmd = parse(&[s("play"), Amf0Value::Number(4.0), Amf0Value::Null, s("cam")]).unwrap();
        assert_eq!(
            cmd,
            Command::Play {
                transaction_id: 4.0,
                name: "cam".into(),
                start: -2.0,
                duration: -1.0,
                reset: true
            }
        );
        let cmd = parse(&[
            s("play"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            s("cam"),
            Amf0Value::Number(-1.0),
            Amf0Value::Number(5.0),
            Amf0Value::Number(0.0),
        ])
        .unwrap();
        assert_eq!(
            cmd,
            Command::Play {
                transaction_id: 0.0,
                name: "cam".into(),
                start: -1.0,
                duration: 5.0,
                reset: false
            }
        );
    }

    #[test]
    fn connect_fields() {
        let cmd =
            Command::parse(&connect_request(1.0, "live", "rtmp://h/live"), &Amf0Limits::default())
                .unwrap();
        assert_eq!(
            cmd,
            Command::Connect {
                transaction_id: 1.0,
                app: "live".into(),
                tc_url: Some("rtmp://h/live".into()),
                object_encoding: 0.0
            }
        );
        let err = parse(&[s("connect"), Amf0Value::Number(1.0), Amf0Value::Null]).unwrap_err();
        assert_eq!(err, CommandError::MissingArgument("connect"));
    }

    #[test]
    fn publish_delete_and_errors() {
        let cmd =
            parse(&[s("publish"), Amf0Value::Number(5.0), Amf0Value::Null, s("a?k=1")]).unwrap();
        assert_eq!(
            cmd,
            Command::Publish {
                transaction_id: 5.0,
                name: "a?k=1".into(),
                publish_type: "live".into()
            }
        );
        let cmd = parse(&[
            s("deleteStream"),
            Amf0Value::Number(6.0),
            Amf0Value::Null,
            Amf0Value::Number(1.0),
        ])
        .unwrap();
        assert_eq!(cmd, Command::DeleteStream { transaction_id: 6.0, stream_id: 1 });
        let cmd = parse(&[
            s("deleteStream"),
            Amf0Value::Number(6.0),
            Amf0Value::Null,
            Amf0Value::Number(-3.0),
        ])
        .unwrap();
        assert_eq!(cmd, Command::DeleteStream { transaction_id: 6.0, stream_id: 0 });
        assert_eq!(parse(&[Amf0Value::Number(1.0)]).unwrap_err(), CommandError::NoName);
        assert_eq!(
            parse(&[s("publish"), Amf0Value::Number(1.0)]).unwrap_err(),
            CommandError::MissingArgument("publish")
        );
        assert!(matches!(
            Command::parse(&[0x02, 0x00], &Amf0Limits::default()),
            Err(CommandError::Amf0(_))
        ));
    }

    #[test]
    fn replies_parse_back() {
        let limits = Amf0Limits::default();
        match Command::parse(&connect_result(1.0, 0.0), &limits).unwrap() {
            Command::Result { transaction_id, values } => {
                assert_eq!(transaction_id, 1.0);
                assert_eq!(values[0].get("fmsVer"), Some(&s("FMS/3,0,1,123")));
                assert_eq!(values[1].get("code"), Some(&s("NetConnection.Connect.Success")));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Command::parse(&on_status("error", "NetStream.Publish.BadName", "taken", &[]), &limits)
                .unwrap(),
            Command::OnStatus {
                level: "error".into(),
                code: "NetStream.Publish.BadName".into(),
                description: "taken".into()
            }
        );
        match Command::parse(&connect_error(1.0, "go away"), &limits).unwrap() {
            Command::Error { values, .. } => assert_eq!(error_description(&values), "go away"),
            other => panic!("{other:?}"),
        }
        match Command::parse(&request("FCSubscribe", 3.0, &[s("x")]), &limits).unwrap() {
            Command::Other { name, transaction_id, args } => {
                assert_eq!((name.as_str(), transaction_id), ("FCSubscribe", 3.0));
                assert_eq!(args, vec![Amf0Value::Null, s("x")]);
            }
            other => panic!("{other:?}"),
        }
    }
}
