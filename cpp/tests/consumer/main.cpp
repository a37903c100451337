// consumer ARTIFACT IMAGE SEED: prints "frames T S" after generating one clip.
#include <cstdio>
#include <string>

#include "dtvnet/generator.h"
#include "dtvnet/image_io.h"

int main(int argc, char** argv) {
  if (argc != 4) return 64;
  dtvnet::Generator generator(argv[1]);
  const dtvnet::Frames frames = generator.run(dtvnet::load_image(argv[2]).view(), std::stoull(argv[3]));
  std::printf("frames %d %d\n", frames.count, frames.height);
  return 0;
}
