//! What every surface reads a request with: the one body reader with its size limit
//! ([`body`]), the path's segments ([`segments`]), the query's parameters ([`query`]) and the
//! route table's path templates ([`template`]). Surfaces import these from here, never from
//! each other.

pub mod body;
pub mod query;
pub mod segments;
pub mod template;
