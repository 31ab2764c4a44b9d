//! Architecture from an executable's header: ELF (Linux, BSD).

/// The architecture of an ELF executable, named as libguestfs does (`x86_64`, `i386`,
/// `aarch64`, `armv7l`, `ppc64le`, `ppc64`, `s390x`, `riscv64`, ...). Needs the first 64 bytes.
pub fn elf_arch(head: &[u8]) -> Option<&'static str> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let class64 = match head[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match head[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let machine = if little {
        u16::from_le_bytes([head[18], head[19]])
    } else {
        u16::from_be_bytes([head[18], head[19]])
    };
    Some(match (machine, class64, little) {
        (3, false, _) => "i386",
        (62, true, _) => "x86_64",
        (183, true, _) => "aarch64",
        (40, false, true) => "armv7l",
        (40, false, false) => "armv7b",
        (21, true, true) => "ppc64le",
        (21, true, false) => "ppc64",
        (20, false, _) => "ppc",
        (22, true, _) => "s390x",
        (22, false, _) => "s390",
        (243, true, _) => "riscv64",
        (243, false, _) => "riscv32",
        (8, false, true) => "mipsel",
        (8, false, false) => "mips",
        (8, true, true) => "mips64el",
        (8, true, false) => "mips64",
        (2 | 43, true, _) => "sparc64",
        (2, false, _) => "sparc",
        (258, true, _) => "loongarch64",
        (50, true, _) => "ia64",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        let m = if data == 1 {
            machine.to_le_bytes()
        } else {
            machine.to_be_bytes()
        };
        h[18..20].copy_from_slice(&m);
        h
    }

    #[test]
    fn machines() {
        assert_eq!(elf_arch(&header(2, 1, 62)), Some("x86_64"));
        assert_eq!(elf_arch(&header(1, 1, 3)), Some("i386"));
        assert_eq!(elf_arch(&header(2, 2, 22)), Some("s390x"));
        assert_eq!(elf_arch(&header(2, 1, 21)), Some("ppc64le"));
        assert_eq!(elf_arch(&header(2, 1, 9999)), None);
        assert_eq!(elf_arch(b"MZ\x90\x00"), None);
        assert_eq!(elf_arch(&[]), None);
    }
}
