//! The protobuf codec every generated client and server uses: prost's, except that a body that
//! does not decode is `INVALID_ARGUMENT` (the caller sent something malformed; per the
//! project's error table), where tonic's own codec says `INTERNAL`.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// prost encoding and decoding, with decode failures reported as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrataCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for StrataCodec<T, U> {
    fn default() -> Self {
        StrataCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for StrataCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrataDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrataDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

/// prost's decoder; its errors become `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrataDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for StrataDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|e| {
            crate::error::invalid_argument(format!("malformed request body: {}", e.message()))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
