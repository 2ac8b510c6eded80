// MappedFile (POSIX mmap) and MappedFileCursor.
#include "vortex/model/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vortex/model/mapped_file_cursor.h"

namespace vortex {

Expected<MappedFile> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string msg = "cannot open '" + path + "': " + std::strerror(err);
    if (err == ENOENT) return not_found(msg + "; check the path");
    return invalid_argument(msg);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument("'" + path + "' is not a regular file");
  }
  MappedFile f;
  f.path_ = path;
  f.size_ = static_cast<size_t>(st.st_size);
  if (f.size_ > 0) {
    void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return invalid_argument("cannot memory-map '" + path + "': " + std::strerror(err));
    }
    f.data_ = static_cast<const uint8_t*>(p);
    f.mapped_ = true;
  }
  ::close(fd);  // the mapping keeps the file alive
  return f;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = o.data_;
    size_ = o.size_;
    mapped_ = o.mapped_;
    path_ = std::move(o.path_);
    o.data_ = nullptr;
    o.size_ = 0;
    o.mapped_ = false;
  }
  return *this;
}

void MappedFile::reset() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = false;
}

Expected<std::span<const uint8_t>> MappedFile::slice(uint64_t offset, uint64_t n) const {
  if (!in_bounds(offset, n)) {
    return invalid_argument(path_ + ": at byte offset " + std::to_string(offset) + ": " +
                            std::to_string(n) + " bytes requested but the file has " +
                            std::to_string(size_) + " bytes (truncated or corrupt file)");
  }
  return std::span<const uint8_t>(data_ + offset, static_cast<size_t>(n));
}

Status MappedFileCursor::read_bytes(uint64_t n, std::string* out, std::string_view what) {
  if (remaining() < n) return truncated(n, what);
  out->assign(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(n));
  pos_ += n;
  return Status::ok();
}

Status MappedFileCursor::skip(uint64_t n, std::string_view what) {
  if (remaining() < n) return truncated(n, what);
  pos_ += n;
  return Status::ok();
}

Status MappedFileCursor::seek(uint64_t offset, std::string_view what) {
  if (offset < base_ || offset - base_ > bytes_.size()) {
    return error_at(offset, std::string(what) + " lies outside the file (" +
                                std::to_string(base_ + bytes_.size()) + " bytes)");
  }
  pos_ = offset - base_;
  return Status::ok();
}

Status MappedFileCursor::error_at(uint64_t offset, std::string_view message) const {
  return invalid_argument(name_ + ": at byte offset " + std::to_string(offset) + ": " +
                          std::string(message));
}

Status MappedFileCursor::truncated(uint64_t need, std::string_view what) const {
  return error("truncated file: reading " + std::string(what) + " needs " + std::to_string(need) +
               " bytes but only " + std::to_string(remaining()) + " remain");
}

}  // namespace vortex
