//! qcow2 reader (stub: being written).

use std::path::Path;

use guestctl_block::RawFile;

use crate::{Ctx, Error, Image, Result};

pub(crate) fn open(_file: RawFile, path: &Path, _ctx: &Ctx<'_>) -> Result<Image> {
    Err(Error::unsupported("qcow2 reader not written yet").path(path))
}
