# CUDA backend: Hopper (sm_90a) only; compiles on a machine with the toolkit and no GPU.
set(CMAKE_CUDA_ARCHITECTURES OFF)
enable_language(CUDA)
# CMake 3.25 does not know the C++20 flag of nvcc 13: declare 17 and make that dialect's flag
# -std=c++20 (a plain -std=c++20 in the flags would be overridden by CMake's later -std=c++17).
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED OFF)
set(CMAKE_CUDA17_STANDARD_COMPILE_OPTION "-std=c++20")
set(CMAKE_CUDA17_EXTENSION_COMPILE_OPTION "-std=c++20")

find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
set(VORTEX_CUDA_ARCH_FLAGS "-gencode=arch=compute_90a,code=sm_90a")
string(APPEND CMAKE_CUDA_FLAGS " ${VORTEX_CUDA_ARCH_FLAGS} --expt-relaxed-constexpr -lineinfo")
add_compile_definitions(VORTEX_WITH_CUDA=1)
