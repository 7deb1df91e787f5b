#pragma once
// Columns and attributes in the shapes the results store uses (1-D datasets, variable-length
// UTF-8 strings, scalar attributes), with HDF5's exceptions turned into qsweep::Error naming the
// file and the object. Private to the store.
#include <H5Cpp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qsweep::h5 {

// Opens or creates the group PARENT/name.
H5::Group group(const H5::Group& parent, const std::string& name);
H5::Group open_group(const H5::Group& parent, const std::string& name);
bool has(const H5::Group& parent, const std::string& name);
std::vector<std::string> children(const H5::Group& parent);

void write_strings(const H5::Group& g, const std::string& name,
                   const std::vector<std::string>& values);
void write_doubles(const H5::Group& g, const std::string& name, const std::vector<double>& values);
void write_ints(const H5::Group& g, const std::string& name, const std::vector<int64_t>& values);

std::vector<std::string> read_strings(const H5::Group& g, const std::string& name);
std::vector<double> read_doubles(const H5::Group& g, const std::string& name);
std::vector<int64_t> read_ints(const H5::Group& g, const std::string& name);

void set_attr(const H5::H5Object& o, const std::string& name, const std::string& value);
void set_attr(const H5::H5Object& o, const std::string& name, double value);
void set_attr(const H5::H5Object& o, const std::string& name, int64_t value);

std::vector<std::string> attr_names(const H5::H5Object& o);
bool has_attr(const H5::H5Object& o, const std::string& name);
std::optional<std::string> attr_string(const H5::H5Object& o, const std::string& name);
std::optional<double> attr_double(const H5::H5Object& o, const std::string& name);
std::optional<int64_t> attr_int(const H5::H5Object& o, const std::string& name);

// The Error for an HDF5 failure at OBJECT/name.
[[noreturn]] void rethrow(const H5::Exception& e, const H5::H5Object& object,
                          const std::string& name);

}  // namespace qsweep::h5
