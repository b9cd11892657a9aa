//! Conversions between this crate's types and the `strata.v1` wire messages. (A
//! configuration converts itself: [`Config::from_proto`](strata_rpc::Config::from_proto),
//! [`Config::to_proto`](strata_rpc::Config::to_proto).)

/// A client id from its 16 wire bytes (big-endian), or `None` for any other length.
pub fn client_id_from_bytes(bytes: &[u8]) -> Option<u128> {
    let array: [u8; 16] = bytes.try_into().ok()?;
    Some(u128::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_sixteen_bytes() {
        assert_eq!(client_id_from_bytes(&[0; 15]), None);
        assert_eq!(client_id_from_bytes(&[0; 17]), None);
        let mut b = [0u8; 16];
        b[15] = 7;
        assert_eq!(client_id_from_bytes(&b), Some(7));
    }
}
