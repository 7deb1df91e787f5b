#include "hdf5_io.h"

#include "qsweep/util/error.h"

#include <fmt/format.h>

#include <algorithm>

namespace qsweep::h5 {

void rethrow(const H5::Exception& e, const H5::H5Object& object, const std::string& name) {
  std::string file = "?", path = "?";
  try {
    file = object.getFileName();
    path = object.getObjName();
  } catch (const H5::Exception&) {
    // The object itself is broken; the message below still names the dataset.
  }
  const std::string full = path == "/" ? "/" + name : path + "/" + name;
  fail("store '{}': '{}': {} ({})", file, full, e.getDetailMsg(), e.getFuncName());
}

namespace {

// Variable-length UTF-8: h5py reads it as str (.asstr()), pandas takes the column as it is.
H5::StrType utf8() {
  H5::StrType type(H5::PredType::C_S1, H5T_VARIABLE);
  type.setCset(H5T_CSET_UTF8);
  return type;
}

// HDF5 converts strings through a buffer that it zero-fills on every write, 1 MiB unless told
// otherwise; sized to the column (16 bytes per string on disk, 8 in memory) a rewrite of the
// store is several times faster.
H5::DSetMemXferPropList conversion_buffer(size_t n) {
  H5::DSetMemXferPropList xfer;
  xfer.setBuffer(std::max<size_t>(4096, n * 32), nullptr, nullptr);
  return xfer;
}

H5::DataSet create_column(const H5::Group& g, const std::string& name, const H5::DataType& type,
                          size_t n) {
  const hsize_t dims[1] = {static_cast<hsize_t>(n)};
  return g.createDataSet(name, type, H5::DataSpace(1, dims));
}

size_t column_size(const H5::DataSet& ds) {
  const H5::DataSpace space = ds.getSpace();
  if (space.getSimpleExtentNdims() != 1) throw H5::DataSetIException("read", "not a 1-D column");
  hsize_t n = 0;
  space.getSimpleExtentDims(&n);
  return static_cast<size_t>(n);
}

template <typename T>
std::vector<T> read_numbers(const H5::Group& g, const std::string& name,
                            const H5::PredType& type) {
  try {
    const H5::DataSet ds = g.openDataSet(name);
    std::vector<T> values(column_size(ds));
    if (!values.empty()) ds.read(values.data(), type);
    return values;
  } catch (const H5::Exception& e) {
    rethrow(e, g, name);
  }
}

template <typename T>
void write_numbers(const H5::Group& g, const std::string& name, const std::vector<T>& values,
                   const H5::PredType& type) {
  try {
    const H5::DataSet ds = create_column(g, name, type, values.size());
    if (!values.empty()) ds.write(values.data(), type);
  } catch (const H5::Exception& e) {
    rethrow(e, g, name);
  }
}

template <typename T>
void write_scalar_attr(const H5::H5Object& o, const std::string& name, const T& value,
                       const H5::DataType& type) {
  try {
    if (o.attrExists(name)) o.removeAttr(name);
    o.createAttribute(name, type, H5::DataSpace(H5S_SCALAR)).write(type, &value);
  } catch (const H5::Exception& e) {
    rethrow(e, o, "@" + name);
  }
}

template <typename T>
std::optional<T> read_scalar_attr(const H5::H5Object& o, const std::string& name,
                                  const H5::PredType& type) {
  try {
    if (!o.attrExists(name)) return std::nullopt;
    T value{};
    o.openAttribute(name).read(type, &value);
    return value;
  } catch (const H5::Exception& e) {
    rethrow(e, o, "@" + name);
  }
}

}  // namespace

H5::Group group(const H5::Group& parent, const std::string& name) {
  try {
    return parent.nameExists(name) ? parent.openGroup(name) : parent.createGroup(name);
  } catch (const H5::Exception& e) {
    rethrow(e, parent, name);
  }
}

H5::Group open_group(const H5::Group& parent, const std::string& name) {
  try {
    return parent.openGroup(name);
  } catch (const H5::Exception& e) {
    rethrow(e, parent, name);
  }
}

bool has(const H5::Group& parent, const std::string& name) {
  try {
    return parent.nameExists(name);
  } catch (const H5::Exception& e) {
    rethrow(e, parent, name);
  }
}

std::vector<std::string> children(const H5::Group& parent) {
  try {
    std::vector<std::string> names;
    for (hsize_t i = 0; i < parent.getNumObjs(); ++i) names.push_back(parent.getObjnameByIdx(i));
    return names;
  } catch (const H5::Exception& e) {
    rethrow(e, parent, "*");
  }
}

void write_strings(const H5::Group& g, const std::string& name,
                   const std::vector<std::string>& values) {
  try {
    const H5::StrType type = utf8();
    std::vector<const char*> pointers;
    for (const auto& v : values) pointers.push_back(v.c_str());
    const H5::DataSet ds = create_column(g, name, type, values.size());
    if (!values.empty())
      ds.write(pointers.data(), type, H5::DataSpace::ALL, H5::DataSpace::ALL,
               conversion_buffer(values.size()));
  } catch (const H5::Exception& e) {
    rethrow(e, g, name);
  }
}

void write_doubles(const H5::Group& g, const std::string& name, const std::vector<double>& values) {
  write_numbers(g, name, values, H5::PredType::NATIVE_DOUBLE);
}

void write_ints(const H5::Group& g, const std::string& name, const std::vector<int64_t>& values) {
  write_numbers(g, name, values, H5::PredType::NATIVE_INT64);
}

std::vector<std::string> read_strings(const H5::Group& g, const std::string& name) {
  try {
    const H5::DataSet ds = g.openDataSet(name);
    const H5::StrType type = utf8();
    std::vector<char*> raw(column_size(ds), nullptr);
    if (raw.empty()) return {};
    ds.read(raw.data(), type);
    std::vector<std::string> values;
    for (const char* s : raw) values.emplace_back(s ? s : "");
    H5::DataSet::vlenReclaim(raw.data(), type, ds.getSpace());
    return values;
  } catch (const H5::Exception& e) {
    rethrow(e, g, name);
  }
}

std::vector<double> read_doubles(const H5::Group& g, const std::string& name) {
  return read_numbers<double>(g, name, H5::PredType::NATIVE_DOUBLE);
}

std::vector<int64_t> read_ints(const H5::Group& g, const std::string& name) {
  return read_numbers<int64_t>(g, name, H5::PredType::NATIVE_INT64);
}

void set_attr(const H5::H5Object& o, const std::string& name, const std::string& value) {
  try {
    if (o.attrExists(name)) o.removeAttr(name);
    const H5::StrType type = utf8();
    o.createAttribute(name, type, H5::DataSpace(H5S_SCALAR)).write(type, value);
  } catch (const H5::Exception& e) {
    rethrow(e, o, "@" + name);
  }
}

void set_attr(const H5::H5Object& o, const std::string& name, double value) {
  write_scalar_attr(o, name, value, H5::PredType::NATIVE_DOUBLE);
}

void set_attr(const H5::H5Object& o, const std::string& name, int64_t value) {
  write_scalar_attr(o, name, value, H5::PredType::NATIVE_INT64);
}

std::vector<std::string> attr_names(const H5::H5Object& o) {
  try {
    std::vector<std::string> names;
    for (int i = 0; i < o.getNumAttrs(); ++i)
      names.push_back(o.openAttribute(static_cast<unsigned>(i)).getName());
    return names;
  } catch (const H5::Exception& e) {
    rethrow(e, o, "@*");
  }
}

bool has_attr(const H5::H5Object& o, const std::string& name) {
  try {
    return o.attrExists(name);
  } catch (const H5::Exception& e) {
    rethrow(e, o, "@" + name);
  }
}

std::optional<std::string> attr_string(const H5::H5Object& o, const std::string& name) {
  try {
    if (!o.attrExists(name)) return std::nullopt;
    std::string value;
    o.openAttribute(name).read(utf8(), value);
    return value;
  } catch (const H5::Exception& e) {
    rethrow(e, o, "@" + name);
  }
}

std::optional<double> attr_double(const H5::H5Object& o, const std::string& name) {
  return read_scalar_attr<double>(o, name, H5::PredType::NATIVE_DOUBLE);
}

std::optional<int64_t> attr_int(const H5::H5Object& o, const std::string& name) {
  return read_scalar_attr<int64_t>(o, name, H5::PredType::NATIVE_INT64);
}

}  // namespace qsweep::h5
