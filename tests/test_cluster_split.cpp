// The int-group GEMVs' split of `in` across a cluster (qsweep/kernels/cluster_split.h), on the
// shapes of the Llama-3.2-1B step and an H200's 132 multiprocessors.
#include "qsweep/kernels/cluster_split.h"

#include <gtest/gtest.h>

namespace qsweep::cuda {
namespace {

constexpr int64_t kH200Sms = 132;
constexpr int64_t kGrain = 512;  // int_group.cu: 16 pack groups of 32 channels

TEST(ClusterSplit, AimingAtFourBlocksPerMultiprocessorGivesTheOneRowGemv512Blocks) {
  // gate|up 8192 x 2048: 256 column tiles of 32.
  const ClusterSplit s = cluster_split(2048, 256, kH200Sms, true, 4, kGrain);
  EXPECT_EQ(s.blocks, 2);
  EXPECT_EQ(s.channels, 1024);
}

TEST(ClusterSplit, AimingAtSevenGivesIt1024BlocksOfHalfTheChannels) {
  const ClusterSplit s = cluster_split(2048, 256, kH200Sms, true, 7, kGrain);
  EXPECT_EQ(s.blocks, 4);
  EXPECT_EQ(s.channels, 512);
}

TEST(ClusterSplit, ANarrowWeightSplitsAsFarAsThePortableClusterSize) {
  // down 2048 x 8192: 64 tiles would want 9 blocks each.
  const ClusterSplit s = cluster_split(8192, 64, kH200Sms, true, 4, kGrain);
  EXPECT_EQ(s.blocks, kMaxClusterSplit);
  EXPECT_EQ(s.channels, 1024);
}

TEST(ClusterSplit, BlocksHoldWholeGrainsSoASquareWeightTakesFewerThanItAimsAt) {
  // o 2048 x 2048 aims at 8 blocks of 256 channels; grains of 512 leave 4.
  const ClusterSplit s = cluster_split(2048, 64, kH200Sms, true, 4, kGrain);
  EXPECT_EQ(s.blocks, 4);
  EXPECT_EQ(s.channels, 512);
}

TEST(ClusterSplit, WithoutClustersOneBlockTakesEveryChannel) {
  const ClusterSplit s = cluster_split(2048, 256, 108, false, 4, kGrain);
  EXPECT_EQ(s.blocks, 1);
  EXPECT_EQ(s.channels, 2048);
}

TEST(ClusterSplit, AnEmptyWeightGetsASplitWithoutDividingByZero) {
  const ClusterSplit no_channels = cluster_split(0, 256, kH200Sms, true, 4, kGrain);
  EXPECT_EQ(no_channels.blocks, 0);
  EXPECT_EQ(no_channels.channels, kGrain);
  // No output columns: split as one tile would be.
  const ClusterSplit no_tiles = cluster_split(2048, 0, kH200Sms, true, 4, kGrain);
  const ClusterSplit one_tile = cluster_split(2048, 1, kH200Sms, true, 4, kGrain);
  EXPECT_EQ(no_tiles.blocks, one_tile.blocks);
  EXPECT_EQ(no_tiles.channels, one_tile.channels);
}

TEST(ClusterSplit, TheBlocksCoverEveryChannelOnceAtEveryShape) {
  for (int64_t in = 32; in <= 16384; in += 32)
    for (int64_t tiles : {1, 7, 64, 256, 448, 4096})
      for (int64_t aim : {1, 4, 7, 16}) {
        const ClusterSplit s = cluster_split(in, tiles, kH200Sms, true, aim, kGrain);
        ASSERT_GE(s.blocks, 1);
        ASSERT_LE(s.blocks, kMaxClusterSplit);
        ASSERT_EQ(s.channels % kGrain, 0);
        ASSERT_GE(s.blocks * s.channels, in) << in << " " << tiles << " " << aim;
        ASSERT_LT((s.blocks - 1) * s.channels, in) << in << " " << tiles << " " << aim;
      }
}

}  // namespace
}  // namespace qsweep::cuda
