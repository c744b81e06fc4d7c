//! Scripted cameras in virtual time.
use super::*;
