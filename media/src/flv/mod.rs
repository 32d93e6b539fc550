//! FLV: the file/stream header, tag framing (write and incremental read), and `onMetaData`.

mod metadata;
mod reader;
mod tag;

pub use metadata::{normalize_data_message, Metadata};
pub use reader::{FlvError, FlvReader, FlvTag, MAX_HEADER_LEN};
pub use tag::{
    file_header, tag_header, FILE_HEADER_LEN, MAX_TAG_DATA_LEN, PREVIOUS_TAG_SIZE_LEN,
    TAG_HEADER_LEN,
};
