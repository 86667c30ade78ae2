"""all_settled / all_succeeded: gather's answers, one loop turn sooner, inputs left alone."""

from __future__ import annotations

import asyncio
import gc

import pytest

from pipeline.publishing.settled import all_settled, all_succeeded


async def turns_until_done(*futures: asyncio.Future[object]) -> list[int]:
    """Per future, how many iterations of the loop passed before it was done."""
    done_at: list[int | None] = [None] * len(futures)
    turns = 0
    while any(turn is None for turn in done_at):
        await asyncio.sleep(0)
        turns += 1
        for index, future in enumerate(futures):
            if done_at[index] is None and future.done():
                done_at[index] = turns
    return [turn for turn in done_at if turn is not None]


def test_all_settled_answers_like_gather_with_return_exceptions() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        first, second, third = (loop.create_future() for _ in range(3))
        settled = all_settled([first, second, third])
        gathered = asyncio.gather(first, second, third, return_exceptions=True)
        failure = RuntimeError("not acknowledged")
        second.set_exception(failure)
        third.set_result(3)
        await asyncio.sleep(0)
        assert not settled.done(), "answered before every input was done"
        first.set_result(1)
        assert await settled == [1, failure, 3] == await gathered

    asyncio.run(scenario())


def test_all_succeeded_fails_at_the_first_failure_and_reads_the_others() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        succeeded = all_succeeded([first, second])
        second.set_exception(RuntimeError("second"))
        with pytest.raises(RuntimeError, match="second"):
            await succeeded
        first.set_exception(RuntimeError("first, after"))  # read: not reported as lost
        await asyncio.sleep(0)

    reported: list[dict[str, object]] = []
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    loop.run_until_complete(scenario())
    gc.collect()
    loop.close()
    assert reported == []


def test_all_succeeded_lists_the_results_and_an_empty_list_is_done_at_once() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        inputs = [loop.create_future() for _ in range(3)]
        succeeded = all_succeeded(inputs)
        for value, future in enumerate(inputs):
            future.set_result(value)
        assert await succeeded == [0, 1, 2]
        assert all_succeeded([]).result() == []
        assert all_settled([]).result() == []
        cancelled = loop.create_future()
        cancelled.cancel()
        assert isinstance((await all_settled([cancelled]))[0], asyncio.CancelledError)
        with pytest.raises(asyncio.CancelledError):
            await all_succeeded([cancelled])

    asyncio.run(scenario())


def test_the_answer_comes_in_the_last_inputs_callback_sooner_than_gathers() -> None:
    async def collect(acks: asyncio.Future[list[int]]) -> list[int]:
        return await acks  # as the producer's collecting task did

    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        ours_in, theirs_in = loop.create_future(), loop.create_future()
        ours = all_succeeded([ours_in])
        theirs = asyncio.ensure_future(collect(asyncio.gather(theirs_in)))
        await asyncio.sleep(0)
        ours_in.set_result(1)
        theirs_in.set_result(1)
        return await turns_until_done(ours, theirs)

    ours, theirs = asyncio.run(scenario())
    assert ours < theirs, (ours, theirs)


def test_cancelling_the_answer_leaves_the_inputs_in_flight() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ack = loop.create_future()
        waiting = all_succeeded([ack])
        waiting.cancel()
        assert not ack.cancelled()
        ack.set_result(1)  # the acknowledgement still lands; nothing raises
        await asyncio.sleep(0)

    asyncio.run(scenario())
