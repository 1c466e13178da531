# escape=`

FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
ENV GOPATH=C:\go `
    PATH="C:\go\bin;C:\Program Files\Git\cmd"
RUN Write-Host 'one'; `
    Write-Host 'two'
COPY C:\src\app.exe C:\app\
WORKDIR C:\app
RUN echo line1 \
CMD ["C:\\app\\app.exe"]
