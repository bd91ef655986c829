// Minimal .npy (format 1.0) reading and writing for concord tensors: little-endian f32 ('<f4'),
// f16 ('<f2'), i32 ('<i4'), u32 ('<u4') and bool (read from '|b1'/'|u1', written as '|u1' 0/1),
// C order only. Errors name the file and the offending header field.
#pragma once
#include <concord/types.hpp>

#include <fstream>
#include <sstream>

namespace concord::npy {

inline tensor read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw error("concord npy: cannot open " + path);
  char magic[8];
  f.read(magic, 8);
  if (!f || std::string(magic, 6) != "\x93NUMPY") throw error("concord npy: " + path + " is not a .npy file");
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    uint16_t h = 0;
    f.read(reinterpret_cast<char*>(&h), 2);
    hlen = h;
  } else {
    f.read(reinterpret_cast<char*>(&hlen), 4);
  }
  std::string header(hlen, ' ');
  f.read(header.data(), hlen);
  auto field = [&](const std::string& key) {
    size_t p = header.find("'" + key + "'");
    if (p == std::string::npos) throw error("concord npy: " + path + ": header has no '" + key + "'");
    return header.substr(header.find(':', p) + 1);
  };
  std::string descr = field("descr");
  descr = descr.substr(descr.find('\'') + 1);
  descr = descr.substr(0, descr.find('\''));
  if (field("fortran_order").find("True") < field("fortran_order").find(','))
    throw error("concord npy: " + path + ": fortran_order arrays are not supported");
  std::string sh = field("shape");
  sh = sh.substr(sh.find('(') + 1, sh.find(')') - sh.find('(') - 1);
  shape_t shape;
  std::stringstream ss(sh);
  for (std::string part; std::getline(ss, part, ',');)
    if (part.find_first_of("0123456789") != std::string::npos) shape.push_back(std::stoll(part));
  dtype t;
  bool byte_bool = false;
  if (descr == "<f4") t = dtype::f32;
  else if (descr == "<f2") t = dtype::f16;
  else if (descr == "<i4") t = dtype::i32;
  else if (descr == "<u4") t = dtype::u32;
  else if (descr == "|b1" || descr == "|u1") t = dtype::boolean, byte_bool = true;
  else throw error("concord npy: " + path + ": dtype '" + descr + "' is not supported (f32, f16, i32, u32, bool)");
  tensor x(t, shape);
  if (byte_bool) {
    std::vector<uint8_t> b(static_cast<size_t>(x.size()));
    f.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(b.size()));
    for (int64_t i = 0; i < x.size(); ++i) x.as<uint32_t>()[i] = b[i] != 0;
  } else {
    f.read(reinterpret_cast<char*>(x.bytes.data()), static_cast<std::streamsize>(x.bytes.size()));
  }
  if (!f) throw error("concord npy: " + path + " is shorter than its header says (shape " + to_string(shape) + ")");
  return x;
}

inline void write(const std::string& path, const tensor& x) {
  const char* descr = x.type == dtype::f32 ? "<f4" : x.type == dtype::f16 ? "<f2" : x.type == dtype::i32 ? "<i4" : x.type == dtype::u32 ? "<u4" : "|u1";
  std::string sh;
  for (int64_t d : x.shape) sh += std::to_string(d) + ", ";
  if (x.shape.size() > 1) sh.pop_back(), sh.pop_back();
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + sh + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) throw error("concord npy: cannot write " + path);
  const uint16_t hlen = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(&hlen), 2);
  f << header;
  if (x.type == dtype::boolean) {
    for (int64_t i = 0; i < x.size(); ++i) f.put(static_cast<char>(x.as<uint32_t>()[i] != 0));
  } else {
    f.write(reinterpret_cast<const char*>(x.bytes.data()), static_cast<std::streamsize>(x.bytes.size()));
  }
}

}  // namespace concord::npy
