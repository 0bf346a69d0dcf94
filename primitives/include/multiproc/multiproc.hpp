// multiproc/multiproc.hpp — everything: #include <multiproc/multiproc.hpp>
#pragma once

#include <multiproc/deadline.hpp>
#include <multiproc/error.hpp>
#include <multiproc/robust_mutex.hpp>
