//! AMF0 command messages (type 20): parsing the commands clients send and building the replies
//! (`_result`, `_error`, `onStatus`) real clients expect.

use crate::amf0::{Amf0Limits, Amf0Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Connect { transaction_id: f64, app: String, tc_url: Option<String>, object_encoding: f64 },
    CreateStream { transaction_id: f64 },
    ReleaseStream { transaction_id: f64, name: String },
    FcPublish { transaction_id: f64, name: String },
    FcUnpublish { transaction_id: f64, name: String },
    Publish { transaction_id: f64, name: String, publish_type: String },
    /// `start`: -2 live or recorded, -1 live only, >= 0 recorded from that time; `duration` -1 all.
    Play { transaction_id: f64, name: String, start: f64, duration: f64, reset: bool },
    DeleteStream { transaction_id: f64, stream_id: u32 },
    CloseStream { transaction_id: f64 },
    GetStreamLength { transaction_id: f64, name: String },
    /// `_result` answers (client side).
    Result { transaction_id: f64, values: Vec<Amf0Value> },
    /// `_error` answers (client side).
    Error { transaction_id: f64, values: Vec<Amf0Value> },
    OnStatus { level: String, code: String, description: String },
    /// Anything else (`FCSubscribe`, `_checkbw`, `getStreamLength` variants, ...).
    Other { name: String, transaction_id: f64, args: Vec<Amf0Value> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Amf0(#[from] crate::amf0::Amf0Error),
    #[error("command message has no name")]
    NoName,
    #[error("command '{0}' is missing a required argument")]
    MissingArgument(&'static str),
}

impl Command {
    /// Parse an AMF0 command message payload.
    pub fn parse(payload: &[u8], limits: &Amf0Limits) -> Result<Command, CommandError> {
        todo!()
    }
}
