#include "qsweep/util/error.h"
#include "qsweep/util/text.h"

#include <gtest/gtest.h>

using namespace qsweep;

TEST(Sha256, MatchesKnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileMatchesShippedChecksum) {
  // SOURCES.txt records this checksum for the shipped CoQA sample.
  EXPECT_EQ(sha256_file(QSWEEP_SOURCE_DIR "/data/coqa/coqa_dev_format_sample_10stories.json"),
            "a8f956e7de7b8f2aed9902b6fe2294bc5ad0ed07ef38aa89ac13fcf51af38040");
}

TEST(ReadFile, MissingFileNamesThePath) {
  try {
    read_file("/nonexistent/qsweep.txt");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/qsweep.txt"), std::string::npos);
  }
}

TEST(Utf8, RoundTripsAndReplacesInvalidBytes) {
  const std::string text = "caf\xC3\xA9 \xF0\x9F\x98\x80 \xE4\xB8\xAD";
  EXPECT_EQ(u32_to_utf8(utf8_to_u32(text)), text);
  EXPECT_EQ(utf8_to_u32("a\xFF" "b"), std::u32string(U"a\uFFFDb"));
}

TEST(ClosestMatch, SuggestsNearbyKeysOnly) {
  const std::vector<std::string> keys = {"model", "baseline", "configs", "evaluation"};
  EXPECT_EQ(closest_match("modle", keys), "model");
  EXPECT_EQ(closest_match("evalution", keys), "evaluation");
  EXPECT_EQ(closest_match("zzzzzz", keys), "");
}

TEST(Utf8, TruncatedSequenceIsOneReplacementAsPythonDoes) {
  // b"a\xe4\xb8b".decode("utf-8", "replace") == "a\ufffdb"; b"\xed\xa0\x80" -> 3 x U+FFFD.
  EXPECT_EQ(utf8_to_u32("a\xE4\xB8" "b"), std::u32string(U"a\uFFFDb"));
  EXPECT_EQ(utf8_to_u32("\xED\xA0\x80"), std::u32string(U"\uFFFD\uFFFD\uFFFD"));
  EXPECT_EQ(utf8_to_u32("\xF0\x9F\x98"), std::u32string(U"\uFFFD"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));
  EXPECT_EQ(utf8_lossy("ok\xFF"), "ok\xEF\xBF\xBD");
}
