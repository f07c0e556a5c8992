using Machi.Broker.Batch;

namespace Machi.Broker.Tests.Batch;

/// <summary>
/// A batch request parses no further ahead of the disk than its window allows: with two runs unsettled it goes on at
/// once, with a third it waits for the oldest, and a run that failed lets it go on without throwing (the failure is
/// the run's own outcome, reported for its entities).
/// </summary>
public sealed class WriteWindowTests
{
    [Fact]
    public async Task Making_room_waits_for_the_oldest_write_once_more_than_the_window_are_unsettled()
    {
        var window = new WriteWindow(ahead: 2);
        var first = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var second = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var third = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);

        window.Add(first.Task);
        window.Add(second.Task);
        Assert.True(window.MakeRoomAsync().AsTask().IsCompletedSuccessfully);

        window.Add(third.Task);
        var room = window.MakeRoomAsync().AsTask();
        await Task.Delay(50);
        Assert.False(room.IsCompleted);

        // Later writes settling first do not make room: the oldest is what the window waits for.
        third.SetResult(3);
        await Task.Delay(50);
        Assert.False(room.IsCompleted);

        first.SetException(new IOException("disk full"));
        await room.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(room.IsCompletedSuccessfully);
    }
}
