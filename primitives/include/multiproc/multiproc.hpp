// multiproc/multiproc.hpp — everything: #include <multiproc/multiproc.hpp>
#pragma once

#include <multiproc/arena.hpp>
#include <multiproc/barrier.hpp>
#include <multiproc/condition.hpp>
#include <multiproc/deadline.hpp>
#include <multiproc/dict.hpp>
#include <multiproc/error.hpp>
#include <multiproc/event.hpp>
#include <multiproc/lock.hpp>
#include <multiproc/offset_ptr.hpp>
#include <multiproc/pipe.hpp>
#include <multiproc/pool.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queue.hpp>
#include <multiproc/semaphore.hpp>
#include <multiproc/value.hpp>
