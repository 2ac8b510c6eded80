# CUDA backend: Hopper (sm_90a) only; compiles on a machine with the toolkit and no GPU.
set(CMAKE_CUDA_ARCHITECTURES OFF)
enable_language(CUDA)
# CMake 3.25 does not know the C++20 flag of nvcc 13: declare 17 and pass -std=c++20 ourselves.
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED OFF)

find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
set(VORTEX_CUDA_ARCH_FLAGS "-gencode=arch=compute_90a,code=sm_90a")
string(APPEND CMAKE_CUDA_FLAGS " ${VORTEX_CUDA_ARCH_FLAGS} -std=c++20 --expt-relaxed-constexpr -lineinfo")
add_compile_definitions(VORTEX_WITH_CUDA=1)
