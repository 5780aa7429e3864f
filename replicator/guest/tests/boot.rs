//! Boots the guest image under QEMU (placeholder until the image lands).
