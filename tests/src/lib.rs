//! Helpers shared by the end-to-end tests: start nodes, run ffmpeg, read HTTP.
