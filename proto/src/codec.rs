//! The codec of the push stream (`alcor.push.v1`): prost's, with small
//! initial buffers.
//!
//! tonic gives every stream an encode and a decode buffer of 8 KiB by
//! default, allocated when the stream opens. A node holds one push stream
//! per connected agent, mostly idle, so that default alone would be 16 KiB
//! per agent. The buffers grow on demand for a large message, so starting
//! small costs only a few reallocations then; and they yield to the
//! transport after each FullSync part, so they grow to about one part.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Initial size of a push stream's encode and decode buffers, in bytes.
pub const PUSH_BUFFER_BYTES: usize = 512;

/// Bytes an encoder may buffer before it yields to the transport (tonic's
/// default is 32 KiB). A stream's encode buffer never shrinks: it keeps the
/// largest size it has reached for as long as the stream lives. Yielding
/// after about one FullSync part (host-push sends parts of at most 2 KiB)
/// keeps back-to-back parts from piling up into one large buffer.
pub const PUSH_YIELD_BYTES_MAX: usize = 2 * 1024;

/// prost encoding with [`PUSH_BUFFER_BYTES`] buffers.
#[derive(Debug, Clone, Copy)]
pub struct PushCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for PushCodec<T, U> {
    fn default() -> Self {
        PushCodec(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(PUSH_BUFFER_BYTES, PUSH_YIELD_BYTES_MAX)
}

impl<T, U> Codec for PushCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codec::{Decoder, Encoder};

    #[test]
    fn push_streams_start_with_small_buffers_not_tonics_default() {
        let mut codec = PushCodec::<(), ()>::default();
        let small = format!("{:?}", settings());
        assert!(small.contains(&PUSH_BUFFER_BYTES.to_string()), "{small}");
        assert_ne!(small, format!("{:?}", BufferSettings::default()));
        assert_eq!(format!("{:?}", codec.encoder().buffer_settings()), small);
        assert_eq!(format!("{:?}", codec.decoder().buffer_settings()), small);
    }
}
