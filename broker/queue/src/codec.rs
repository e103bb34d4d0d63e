//! Decoding a job hash into a [`raybroker_core::Job`].
