/* cmd_devices.c: `clipcl devices`: lists every OpenCL device; with --build,
 * compiles every kernel program on the chosen device (a readable build log and
 * exit 1 when one fails). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_devices(int argc, char **argv) {
  int build = 0;
  const char *spec = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--build")) build = 1;
    else if (!strcmp(argv[i], "--device") && i + 1 < argc) spec = argv[++i];
    else if (!strcmp(argv[i], "--help")) {
      printf("usage: clipcl devices [--build] [--device N|P:D|NAME]\n"
             "Lists OpenCL devices. CLIPCL_DEVICE picks the default device.\n"
             "--build compiles every kernel on the device (fills the binary cache).\n");
      return 0;
    } else {
      fprintf(stderr, "clipcl devices: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  int n;
  if (clipcl_device_count(&n) != CLIPCL_OK) return cli_error("devices");
  if (n == 0) {
    fprintf(stderr, "clipcl devices: no OpenCL device found (install pocl-opencl-icd for the CPU)\n");
    return 1;
  }
  for (int i = 0; i < n; i++) {
    clipcl_device_info d;
    if (clipcl_device_query(i, &d) != CLIPCL_OK) return cli_error("devices");
    printf("[%d] %d:%d %s\n", d.index, d.platform_index, d.device_index, d.name);
    printf("    vendor %s, platform %s, %s\n", d.vendor, d.platform,
           d.is_gpu ? "GPU" : d.is_cpu ? "CPU" : "other");
    printf("    %d compute units, %.1f GiB global memory, max allocation %.1f GiB, local %llu KiB\n",
           d.compute_units, d.global_mem / 1073741824.0, d.max_alloc / 1073741824.0,
           (unsigned long long)(d.local_mem / 1024));
    printf("    %s, driver %s, fp16 %s, fp64 %s, kernels in float%d vectors\n", d.version, d.driver,
           d.fp16 ? "yes" : "no", d.fp64 ? "yes" : "no", d.vector_width);
  }
  if (build) {
    clipcl_device *dev = cli_open_device("devices", spec);
    if (!dev) return 1;
    clipcl_device_info d;
    clipcl_device_get_info(dev, &d);
    printf("building kernels on [%d] %s ...\n", d.index, d.name);
    if (clipcl_device_build_all(dev) != CLIPCL_OK) {
      cli_error("devices");
      clipcl_device_free(dev);
      return 1;
    }
    printf("all kernels built\n");
    clipcl_device_free(dev);
  }
  return 0;
}
