//! prost's codec, with each response message handed to HTTP/2 as its own chunk.
//!
//! tonic's default encoder gathers the messages a stream has ready into one
//! chunk of up to 32 KiB before it hands it to hyper, and hyper polls a body
//! for its next chunk before it knows whether the client has granted window
//! for it; the chunk then waits in memory, per stream, until the client reads.
//! A watch stream whose client never reads would hold up to ~40 KiB that way
//! (several ~9 KiB comments), which across thousands of streams is most of
//! the server's memory. Yielding after every message bounds that to one
//! message per stream; the export's chunks (64 KiB) are unaffected.
use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

/// Encoding buffer: tonic's default size, yielding after every message.
fn settings() -> BufferSettings {
    BufferSettings::new(8 * 1024, 1)
}

/// The codec the generated services and clients use (set in build.rs).
#[derive(Debug, Clone, Copy)]
pub struct MessageCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for MessageCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for MessageCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
