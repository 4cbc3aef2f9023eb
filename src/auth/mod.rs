//! Authentication: deciding who a request comes from.

pub mod htpasswd;
