using Machi.Tests.Browser;

namespace Machi.Portal.Tests.Infrastructure;

/// <summary>The portal's browser tests share one Chromium.</summary>
[CollectionDefinition(Name)]
public sealed class ChromiumGroup : ICollectionFixture<Chromium>
{
    public const string Name = "Chromium";
}
