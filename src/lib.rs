pub mod deid;
pub mod profile;
