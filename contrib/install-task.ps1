# Registers the "lrci sync" scheduled task (contrib/lrci-task.xml) under a dedicated
# local account, LogonType Password: it runs whether anyone is logged on or not.
# Keys: one file each under C:\ProgramData\lrci\keys, inheritance removed, readable
# only by that account (and Administrators, who manage it): ACL files, not DPAPI.
# The environment (machine scope) holds only paths: LRCI_*_KEY_FILE, never a key.
# Run elevated:   .\install-task.ps1            .\install-task.ps1 -Uninstall [-RemoveAccount] [-RemoveFiles]
param(
    [switch]$Uninstall, [switch]$RemoveAccount, [switch]$RemoveFiles,
    [string]$Account = 'lrci-svc',
    [string]$Exe = 'C:\Program Files\lrci\lrci.exe',
    [string]$Data = (Join-Path $env:ProgramData 'lrci')
)
$ErrorActionPreference = 'Stop'
$TaskName = 'lrci sync'
$Vars = 'LOGRHYTHM_API_URL', 'LRCI_LOGRHYTHM_API_KEY_FILE', 'LRCI_RF_API_KEY_FILE', 'LRCI_LEDGER', 'LRCI_LOG_DIR'

function Invoke-Native([string]$What, [scriptblock]$Cmd) {
    & $Cmd
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit code $LASTEXITCODE)" }
}

if ($Uninstall) {
    if (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue) {
        Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
    }
    foreach ($v in $Vars) { [Environment]::SetEnvironmentVariable($v, $null, 'Machine') }
    if ($RemoveFiles -and (Test-Path $Data)) { Remove-Item -Recurse -Force $Data }
    if ($RemoveAccount -and (Get-LocalUser -Name $Account -ErrorAction SilentlyContinue)) { Remove-LocalUser -Name $Account }
    Write-Host "Removed task `"$TaskName`""
    exit 0
}

if (-not (Test-Path $Exe)) { throw "lrci.exe not found at $Exe (use -Exe PATH)" }
$url = Read-Host 'LogRhythm API URL (e.g. https://platform-manager:8501)'
$lr  = Read-Host 'LogRhythm API key' -AsSecureString
$rf  = Read-Host 'Recorded Future token (Collective Insights permission)' -AsSecureString

# The account's password is random, set here and handed only to Task Scheduler.
$bytes = New-Object byte[] 32
[Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($bytes)
$plainPw = [Convert]::ToBase64String($bytes) + 'aA1!'
$pw = ConvertTo-SecureString $plainPw -AsPlainText -Force
if (Get-LocalUser -Name $Account -ErrorAction SilentlyContinue) {
    Set-LocalUser -Name $Account -Password $pw -PasswordNeverExpires $true
} else {
    New-LocalUser -Name $Account -Password $pw -PasswordNeverExpires -UserMayNotChangePassword `
        -AccountNeverExpires -Description 'lrci scheduled task' | Out-Null
}
$who = "$env:COMPUTERNAME\$Account"

$keys = Join-Path $Data 'keys'
New-Item -ItemType Directory -Force -Path $keys | Out-Null
# *S-1-5-32-544 = Administrators (language independent).
Invoke-Native "icacls $Data" { icacls $Data /inheritance:r /grant:r '*S-1-5-32-544:(OI)(CI)F' "${who}:(OI)(CI)M" | Out-Null }
Invoke-Native "icacls $keys" { icacls $keys /inheritance:r /grant:r '*S-1-5-32-544:(OI)(CI)F' "${who}:(OI)(CI)R" | Out-Null }

function Write-Key([string]$Name, [securestring]$Secret) {
    $path = Join-Path $keys $Name
    $b = [Runtime.InteropServices.Marshal]::SecureStringToBSTR($Secret)
    try { [IO.File]::WriteAllText($path, [Runtime.InteropServices.Marshal]::PtrToStringBSTR($b)) }
    finally { [Runtime.InteropServices.Marshal]::ZeroFreeBSTR($b) }
    Invoke-Native "icacls $path" { icacls $path /inheritance:r /grant:r '*S-1-5-32-544:F' "${who}:R" | Out-Null }
    $path
}
$values = @{
    'LOGRHYTHM_API_URL'           = $url
    'LRCI_LOGRHYTHM_API_KEY_FILE' = (Write-Key 'logrhythm.key' $lr)
    'LRCI_RF_API_KEY_FILE'        = (Write-Key 'rf.key' $rf)
    'LRCI_LEDGER'                 = (Join-Path $Data 'ledger.sqlite3')
    'LRCI_LOG_DIR'                = (Join-Path $Data 'logs')
}
foreach ($v in $Vars) {
    [Environment]::SetEnvironmentVariable($v, $values[$v], 'Machine')
    Set-Item -Path "Env:$v" -Value $values[$v]
}
Invoke-Native 'lrci config check' { & $Exe config check }

[xml]$xml = Get-Content -Raw -Encoding UTF8 (Join-Path $PSScriptRoot 'lrci-task.xml')
$xml.Task.Principals.Principal.UserId = $who
$xml.Task.Actions.Exec.Command = $Exe
Register-ScheduledTask -TaskName $TaskName -Xml $xml.OuterXml -User $who -Password $plainPw -Force | Out-Null
Write-Host "Registered `"$TaskName`" (every 5 minutes as $who)."
